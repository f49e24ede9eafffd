"""Is this directory a clean base model? The report of ``cleanroom inspect-model``, checked before renting a GPU.

The clean loader decides: sentinels, static base-or-instruct markers, and (when the weights are there and the
probe is not switched off) the behavioural probe. The report says what was checked: ``CLEAN`` (weights probed),
``TOKENIZER-ONLY CLEAN`` (``probe=False``, asked for) or ``NOT CHECKED`` (a directory without weights asked
about as a model: undecided, never read as clean); a contaminated or instruct model is ``clean: False`` with
every reason listed. ``configs`` names the config files the static markers read (none in a tokenizer-only
directory: the markers that read them did not run, and the report must not say they did).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanroom.errors import ContaminationError
from cleanroom.loader import CleanModelLoader


def inspect_model(path: Path, *, gguf_file: str | None = None, allow_instruct_reason: str | None = None,
                  probe: bool = True) -> dict[str, Any]:
    """The inspect-model report of the model directory *path* (see the module docstring).

    ``clean`` is True (checked and clean), None (``NOT CHECKED`` or ``TOKENIZER-ONLY CLEAN``: see ``verdict``)
    or False (``reasons``, ``error`` and the ``probe`` result, when it ran, say why).
    """

    loader = CleanModelLoader(path, gguf_file=gguf_file, allow_instruct=allow_instruct_reason is not None,
                              allow_instruct_reason=allow_instruct_reason, probe=probe)
    has_weights = loader.gguf_file is not None or any(loader.path.glob("*.safetensors"))
    not_run = ("--no-probe" if not probe else
               None if has_weights else f"no weights in {path} (*.safetensors or --gguf-file)")
    try:
        if not_run is None:
            _, _, prov = loader.load()
        else:
            _, prov = loader.load_tokenizer()
    except ContaminationError as exc:
        result = getattr(exc, "probe", None)
        return {"model": str(path), "clean": False,
                "reasons": list(result.reasons) if result is not None else [str(exc)], "error": str(exc),
                "checked": "tokenizer-only" if not_run else "weights",
                "probe": result.to_dict() if result is not None else None, "probe_not_run": not_run}
    verdict = "CLEAN" if not_run is None else "TOKENIZER-ONLY CLEAN" if not probe else "NOT CHECKED"
    return {
        "model": str(path),
        "clean": True if not_run is None else None,  # None: undecided, the probe did not run
        "verdict": verdict,
        "checked": "weights" if not_run is None else "tokenizer-only",
        "configs": [f"{loader.gguf_file} metadata"] if loader.gguf_file else
                   [n for n in ("config.json", "generation_config.json") if n in prov["files"]],
        "probe_not_run": not_run,
        "base_eos_id": prov["base_eos_id"],
        "sentinels": prov["sentinels"],
        "probe": prov.get("probe") or {},
        "tokenizer_changes": prov["tokenizer_changes"],
        "allow_instruct_reason": prov["allow_instruct_reason"],
    }
