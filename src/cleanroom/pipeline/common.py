"""What every stage shares: the run context, model resolution and loading, the budget meter, caching."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cleanroom import distributed, fixtures, guard
from cleanroom.config import ModelSpec, RunSpec
from cleanroom.engine_choice import choose_engine
from cleanroom.errors import BudgetExceededError, ConfigError, InstructModelError, ProvenanceError
from cleanroom.loader import CleanModelLoader
from cleanroom.pipeline.runlog import stamp
from cleanroom.provenance import capture_provenance, digest_path
from cleanroom.verify import verify_stage

FIXTURE_MODELS = {"tiny", "smollm2"}


@dataclass
class BudgetMeter:
    """Wall-clock hours and dollars spent so far; ``exhausted()`` says why the run must stop, or None.

    Cost = hours × price per hour (the rented machine is paid while the run holds it, idle or busy).
    """

    price_per_hour: float
    max_cost_usd: float | None = None
    max_hours: float | None = None
    started: float = field(default_factory=time.monotonic)
    spent_before_s: float = 0.0  # time spent by earlier attempts of a resumed run

    @property
    def hours(self) -> float:
        return (time.monotonic() - self.started + self.spent_before_s) / 3600.0

    @property
    def cost_usd(self) -> float:
        return self.hours * self.price_per_hour

    def exhausted(self) -> str | None:
        if self.max_hours is not None and self.hours >= self.max_hours:
            return f"{self.hours:.3f} h spent >= budget.max_hours {self.max_hours}"
        if self.max_cost_usd is not None and self.cost_usd >= self.max_cost_usd:
            return f"${self.cost_usd:.2f} spent >= budget.max_cost_usd {self.max_cost_usd}"
        return None

    def check(self, before: str) -> None:
        reason = self.exhausted()
        if reason:
            raise BudgetExceededError(
                f"stopped before {before}: {reason}. Finished stages are kept; raise the budget and re-run "
                "with --resume to continue"
            )


@dataclass
class Context:
    """One run: its spec, directory, device and budget. Passed to every stage function."""

    spec: RunSpec
    run: Any  # cleanroom.artifacts.RunDir
    device: str
    budget: BudgetMeter
    resume: bool = False
    progress: bool = True
    log: list[str] = field(default_factory=list)
    log_file: Any = None  # the open runs/<id>/run.log (cleanroom.pipeline.runlog), or None

    def say(self, message: str) -> None:
        """Print one line for the person watching and append it, with its UTC date and time, to the run log."""
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        self.log.append(line)
        print(line, flush=True)
        if self.log_file is not None:
            self.log_file.write(f"{stamp()} {message}\n")

    @property
    def config(self) -> dict[str, Any]:
        """The config the run directory was created with (config.resolved.yaml, the spec without its
        operational fields): what every stage's provenance digests, so it always matches the run's."""
        return self.run.config

    def stage_done(self, name: str) -> bool:
        """A stage finished when its manifest exists (written only on a clean finish) and its files and
        records still match it; whether its result still holds is :meth:`changed_inputs`'s question.

        A finished stage whose files fail its manifest (a flipped byte, an edited record) stops the run
        with :class:`ProvenanceError` (exit 1) naming the first broken edge, before any stage consumes it.
        It is not silently re-made: a finished artifact that changed is tampering or a failing disk,
        which a person must look at, and re-running would overwrite the evidence ``cleanroom verify``
        reports. Removing the stage directory is the explicit way to re-make it from its own inputs.
        """
        if not (self.run.path / name / "manifest.json").is_file():
            return False

        broken = verify_stage(self.run.path, name)
        if broken:
            more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
            raise ProvenanceError(
                f"{broken[0].message}{more}: finished stage {name}'s files fail its manifest, so no stage may "
                f"consume them; `cleanroom verify {self.run.path}` lists every broken edge. To re-make {name} "
                f"from its own inputs, remove {self.run.path / name} and run again with --resume"
            )
        return True

    def changed_inputs(self, name: str) -> list[str]:
        """The inputs of finished stage *name* whose digest now differs from the one its manifest recorded
        (``'<path> (missing)'`` for one that is gone): a stage is cached by the digests of its inputs."""
        changed = []
        for inp in json.loads((self.run.path / name / "manifest.json").read_text()).get("inputs", []):
            path = Path(inp["path"]) if Path(inp["path"]).is_absolute() else self.run.path / inp["path"]
            if not path.exists():
                changed.append(f"{inp['path']} (missing)")
            elif digest_path(path, cache=False) != inp["sha256"]:
                changed.append(inp["path"])
        return changed

    def discard_stage(self, name: str) -> None:
        """Remove a stage's outputs and its work directory (checkpoints), so it runs afresh."""
        for d in (self.run.path / name, self.run.path / ".work" / name):
            if d.exists():
                shutil.rmtree(d)

    def read_json(self, stage: str, name: str) -> Any:
        return json.loads((self.run.path / stage / name).read_text())


def progress_bar(*, total: int, initial: int, label: str, unit: str, enabled: bool) -> Any:
    """The progress bar of a long step: done/total with rate and ETA (tqdm); callers put the running cost
    in its postfix. Off with ``--no-progress``."""
    return tqdm(total=total, initial=initial, desc=label, disable=not enabled, unit=unit, dynamic_ncols=True)


def resolve_device(requested: str) -> str:
    import torch  # heavy optional: torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but torch.cuda.is_available() is False; use device=cpu or auto")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_model(model: ModelSpec, work_dir: Path) -> tuple[Path, str | None]:
    """The model directory and GGUF file name for a spec: a fixture name, a random architecture, or a path."""
    if model.random_init:
        return fixtures.random_qwen25_model(model.random_init, work_dir / "random-model"), None
    if model.path == "tiny":
        return fixtures.tiny_base_model(), None
    if model.path == "smollm2":
        directory = fixtures.smollm2_instruct()
        return directory, model.gguf_file or next(directory.glob("*.gguf")).name
    path = Path(model.path).expanduser()
    if path.is_dir():
        return path, model.gguf_file
    return _hf_cache_snapshot(model.path, model.revision), model.gguf_file


def _hf_cache_snapshot(repo_id: str, revision: str | None) -> Path:
    """A repo id resolved offline in the Hugging Face cache (never downloaded)."""
    try:
        from huggingface_hub import snapshot_download  # heavy optional: huggingface_hub

        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as exc:  # huggingface_hub raises several types for "not in cache"
        raise ConfigError(
            f"model.path {repo_id!r} is neither a local directory nor in the Hugging Face cache "
            f"(revision {revision or 'main'}): {type(exc).__name__}. Download it first on a machine with network "
            "access (huggingface-cli download REPO --revision SHA) or pass model.path=/local/dir"
        ) from None


def load_model(ctx: Context, *, adapters: tuple[Path, ...] = (), probe: bool = True) -> tuple[Any, Any, dict]:
    """Base model through the clean loader, with earlier stages' adapters merged in order.

    Adapters are merged (``merge_and_unload``) into an unquantized base; with a quantized base they
    stay attached (generation through the adapter), since merging into 4-bit weights re-quantizes.
    """

    m = ctx.spec.model
    path, gguf = resolve_model(m, ctx.run.path)
    dtype = m.dtype if m.dtype != "auto" else ("bfloat16" if ctx.device == "cuda" else "float32")
    loader = CleanModelLoader(
        path,
        quantization=m.quantization,
        dtype=dtype,
        device_map=m.device_map or (distributed.device_map(distributed.world()) if ctx.device == "cuda" else None),
        revision=m.revision,
        allow_instruct=m.allow_instruct,
        allow_instruct_reason=m.allow_instruct_reason,
        trust_remote_code=m.trust_remote_code,
        gguf_file=gguf,
        probe=probe,
    )
    try:
        model, tokenizer, prov = loader.load()
    except InstructModelError as exc:  # the loader's fix names its keyword; a run's is the config's key
        raise exc.with_fix("use the base checkpoint, or set model.allow_instruct=true and "
                           "model.allow_instruct_reason='why' in the profile or as key=value overrides (the "
                           "reason is recorded in the run's provenance)") from exc
    if ctx.device == "cuda" and m.device_map is None and m.quantization is None:
        model = model.to("cuda")
    prov = dict(prov, model_dir=str(path))
    if adapters:
        from peft import PeftModel  # heavy optional: peft

        if m.quantization is not None and len(adapters) > 1:
            # a second PeftModel.from_pretrained on an unmerged stack replaces the `default` adapter instead of
            # stacking it; on a quantized base a policy is one adapter (DPO trains the SFT adapter in place)
            raise ConfigError(
                f"load_model: {len(adapters)} adapters ({', '.join(str(a) for a in adapters)}) cannot be stacked "
                f"on a {m.quantization} base (they are not merged); load the one adapter that holds the whole policy"
            )
        for adapter in adapters:
            model = PeftModel.from_pretrained(model, str(adapter))
            if m.quantization is None:
                model = model.merge_and_unload()
        model.eval()
        prov["adapters"] = [str(a) for a in adapters]
    guard.recheck(model, tokenizer)
    return model, tokenizer, prov


def generation_settings(ctx: Context, stage: str, model: Any, gen: Any, **extra: Any) -> dict[str, Any]:
    """What a generating stage records of its decoding: the spec, the engine ``auto`` resolved to on this
    model and why (said in the run log too), and *extra* (e.g. the few-shot digest)."""
    engine, reason = choose_engine(gen.engine, model, sampling=gen.temperature > 0)
    ctx.say(f"{stage}: generation engine {engine} ({reason})")
    return vars(gen) | {"engine_resolved": engine, "engine_reason": reason} | extra


def capture(ctx: Context, stage: str, *, loader: dict | None = None, generation: dict | None = None,
            extra: dict | None = None) -> Any:
    """A stage's provenance. ``unsloth_patched`` says whether Unsloth had been imported in this process when the
    stage started (it patches transformers for the whole process; a stage after an Unsloth one may run patched)."""
    path, _ = resolve_model(ctx.spec.model, ctx.run.path)
    return capture_provenance(
        stage,
        run_id=ctx.run.run_id,
        config=ctx.config,
        model_path=path,
        loader=loader,
        generation=generation,
        seeds={"run": ctx.spec.seed},
        extra={"unsloth_patched": "unsloth" in sys.modules, **(extra or {})},
    )
