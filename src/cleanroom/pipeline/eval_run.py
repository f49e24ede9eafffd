"""``cleanroom eval run``: one model answers an IFEval-format prompt set, scored, in a run directory of its own.

The same stage code as the pipeline's baseline and evaluation (:mod:`cleanroom.pipeline.respond`: generate →
score → write), so a model evaluated here sees byte-identical prompts and decoding, and its files are the
records ``cleanroom verify`` checks: ``<out>/<run_id>/eval/responses.jsonl``, ``verdicts.jsonl`` and
``summary.json``. Responses are written record by record and batches are fixed by position, so a killed
run, started again with the same arguments, resumes where it stopped and ends with exactly the records an
uninterrupted run writes; a different model, prompt set or decoding under the same ``run_id`` is refused.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cleanroom.artifacts import RunDir, atomic_write_bytes, pretty_json
from cleanroom.artifacts.layout import EVAL_RUN_COMMAND, is_name
from cleanroom.config import GenerationSpec
from cleanroom.engine_choice import choose_engine
from cleanroom.errors import ConfigError, InputError, MissingFileError
from cleanroom.ifeval import file_sha256, make_eval_set, read_prompts, summarize
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, STOP, few_shot_prompt
from cleanroom.loader import CleanModelLoader
from cleanroom.pipeline.respond import generate_into, score_into
from cleanroom.provenance import capture_provenance


def eval_model(model_path: Path, *, out: Path, gen: GenerationSpec, run_id: str = "eval", label: str = "model",
               adapter: Path | None = None, gguf_file: str | None = None, prompts: Path | None = None,
               prompts_sha256: str | None = None, limit: int | None = None, probe: bool = True,
               allow_instruct_reason: str | None = None,
               say: Callable[[str], Any] = print) -> tuple[Path, dict[str, Any]]:
    """Generate with the clean loader (few-shot, completion style) and score; return the run directory and
    the summary. *prompts* defaults to the embedded eval set; *limit* keeps the first N prompts.
    *allow_instruct_reason* accepts an instruct model (the loader's ``allow_instruct``), recorded in the
    loader's provenance and in the run's config."""

    for what, value in (("run_id", run_id), ("label", label)):  # before the model loads, for every caller
        if not is_name(value):
            raise ConfigError(f"{what} {value!r} must match [A-Za-z0-9_.-]+ and not start with '.' (it names a "
                              "directory or a part of every record id)")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise MissingFileError(f"adapter {adapter}: no adapter_config.json there; pass the directory a PEFT adapter "
                               "was saved to (e.g. runs/<run_id>/sft/adapter)")
    records, prompts_sha = _prompt_records(prompts, prompts_sha256, limit)
    model, tokenizer, loader_prov = CleanModelLoader(model_path, gguf_file=gguf_file, probe=probe,
                                                     allow_instruct=allow_instruct_reason is not None,
                                                     allow_instruct_reason=allow_instruct_reason).load()
    if adapter is not None:
        # heavy optional: peft
        from peft import PeftModel  # deferred: peft is of the train extra

        model = PeftModel.from_pretrained(model, str(adapter))
    engine, reason = choose_engine(gen.engine, model, sampling=gen.temperature > 0)
    say(f"generation engine {engine} ({reason})")
    generation = {"max_new_tokens": gen.max_new_tokens, "temperature": gen.temperature, "seed": gen.seed,
                  "stop": [STOP], "batch_size": gen.batch_size, "few_shot_digest": FEW_SHOT_DIGEST,
                  "engine": gen.engine, "engine_resolved": engine, "engine_reason": reason}
    adapter_name = str(adapter) if adapter else None
    config = {"command": EVAL_RUN_COMMAND, "model": str(model_path), "adapter": adapter_name,
              "prompts_sha256": prompts_sha, "n_prompts": len(records), "generation": generation,
              # only when given: an earlier run's config (without the key) still resumes
              **({"allow_instruct_reason": allow_instruct_reason} if allow_instruct_reason is not None else {})}
    run = RunDir.create(out, run_id, config)  # the same config reopens the run: resume
    rec = capture_provenance("eval", run_id=run_id, config=config, model_path=model_path, loader=loader_prov,
                             generation=generation, seeds={"generation": gen.seed}, extra={"adapter": adapter_name})
    with run.stage("eval", provenance=rec, inputs=[]) as st:
        responses = generate_into(st.jsonl("responses.jsonl"), model, tokenizer, records, gen=gen,
                                  id_prefix=f"eval/{label}/response", render=lambda r: few_shot_prompt(r.prompt),
                                  progress=False, label="eval")
        verdicts = score_into(st.jsonl("verdicts.jsonl"), records, responses, responses_artifact="eval/responses.jsonl",
                              id_prefix=f"eval/{label}", model_refs=[],
                              produced_under={"model": {"path": str(model_path), "adapter": adapter_name},
                                              "generation": generation,
                                              "rendering": {"few_shot_digest": FEW_SHOT_DIGEST}})
        summary = summarize(verdicts)
        atomic_write_bytes(st.dir / "summary.json", pretty_json(summary))
    run.finalize()
    return run.path, summary


def _prompt_records(prompts: Path | None, sha256: str | None, limit: int | None) -> tuple[list[Any], str]:
    """The prompt records (the embedded eval set when *prompts* is None, the first *limit*) and the file's digest."""

    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1, got {limit}")
    with tempfile.TemporaryDirectory() as tmp:
        if prompts is None:
            make_eval_set(tmp)
            prompts = Path(tmp) / "eval_prompts.jsonl"
        records = read_prompts(prompts, sha256=sha256)
        digest = file_sha256(prompts)
    return records[:limit] if limit is not None else records, digest
