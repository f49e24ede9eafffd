"""A saved LoRA adapter's weights copied into an adapter already attached to a model, with proof they landed.

A backend that attaches its own LoRA modules at load time (Unsloth's ``get_peft_model``) cannot be handed a
saved adapter through ``PeftModel.from_pretrained``; its fresh adapter is filled from the saved one instead.
A silent partial load would be invisible later: DPO's reference is a frozen copy of the policy's adapter, so
step 0 is ln 2 whatever the adapter holds. Hence the proof: the saved adapter's shape (r, alpha, targets,
rsLoRA) must be the attached one's, every saved tensor must have a parameter to land in and every parameter of
the adapter a saved tensor, and after the copy each parameter must equal its saved tensor exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cleanroom.errors import ConfigError, InputError, MissingFileError

#: the adapter settings that decide the function an adapter computes; each must match the attached adapter's
SHAPE_FIELDS = ("r", "lora_alpha", "use_rslora", "target_modules", "rank_pattern", "alpha_pattern")


def load_adapter_weights(model: Any, adapter_dir: str | Path, *, adapter_name: str = "default") -> int:
    """Copy ``adapter_dir``'s weights into ``model``'s attached adapter ``adapter_name``; return the tensor count.

    ``model`` is a ``PeftModel`` whose adapter was attached with the saved adapter's settings (the same
    ``LoraSpec``). Raises ConfigError when the settings differ, InputError when a tensor has no counterpart or
    did not land bit for bit, MissingFileError when the directory lacks ``adapter_config.json`` or
    ``adapter_model.safetensors``.
    """
    # heavy optional: peft
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    # heavy optional: safetensors
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    config_file, weights_file = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    for f in (config_file, weights_file):
        if not f.is_file():
            raise MissingFileError(f"{f} does not exist: {adapter_dir} is not a saved adapter; point at the "
                                   "directory the training stage saved (e.g. RUN/sft/adapter)")
    if adapter_name not in getattr(model, "peft_config", {}):
        raise ConfigError(f"load_adapter_weights: the model has no attached adapter {adapter_name!r} to load "
                          f"{adapter_dir} into; attach one with the saved adapter's LoRA settings first")
    _check_shape(json.loads(config_file.read_text(encoding="utf-8")), model.peft_config[adapter_name], adapter_dir)
    saved = load_file(str(weights_file))
    broken = sorted(k for k, v in saved.items() if v.is_floating_point() and not bool(v.isfinite().all()))
    if broken:
        raise InputError(f"{weights_file}: {len(broken)} tensors hold NaN or inf (e.g. {broken[:2]}): the training that "
                         "saved it diverged; retrain it (lower the learning rate) before starting from it")
    expected = set(get_peft_model_state_dict(model, adapter_name=adapter_name))
    missing, unexpected = sorted(expected - set(saved)), sorted(set(saved) - expected)
    if missing or unexpected:
        raise InputError(f"{weights_file}: its tensors do not match the attached adapter's ({len(missing)} missing, "
                         f"e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}); it was saved "
                         "from another model or LoRA layout — retrain it or attach the LoRA it was trained with")
    set_peft_model_state_dict(model, saved, adapter_name=adapter_name)
    landed = get_peft_model_state_dict(model, adapter_name=adapter_name)
    differ = sorted(k for k, v in saved.items() if not _equal(landed[k], v))
    if differ:
        k = differ[0]
        raise InputError(f"{weights_file}: {len(differ)} tensors did not land in the attached adapter unchanged "
                         f"(e.g. {differ[:2]}: saved {saved[k].dtype}, attached {landed[k].dtype}, which cannot hold "
                         "the saved values); attach the adapter in the dtype it was saved in — for DPO on Unsloth, "
                         "use backend=peft when its LoRA dtype differs")
    return len(saved)


def _check_shape(saved: dict[str, Any], attached: Any, adapter_dir: Path) -> None:
    """ConfigError naming each of :data:`SHAPE_FIELDS` where the saved config and the attached adapter differ."""
    def norm(field: str, value: Any) -> Any:
        if field == "target_modules" and isinstance(value, list | set | tuple):
            return sorted(value)
        if field in ("rank_pattern", "alpha_pattern"):
            return dict(value or {})  # null and {} both mean "no per-layer override"
        return bool(value) if field == "use_rslora" else value

    differ = [f"{f}: saved {norm(f, saved.get(f))!r}, attached {norm(f, getattr(attached, f, None))!r}"
              for f in SHAPE_FIELDS if norm(f, saved.get(f)) != norm(f, getattr(attached, f, None))]
    if differ:
        raise ConfigError(f"{adapter_dir / 'adapter_config.json'}: the saved adapter is not shaped like the attached "
                          f"one ({'; '.join(differ)}); attach the LoRA the adapter was trained with (the SFT "
                          "stage's sft.lora)")


def _equal(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of a landed parameter and its saved tensor (compared in the saved dtype, on the CPU)."""
    return bool(a.shape == b.shape and a.detach().to("cpu", b.dtype).equal(b))


__all__ = ["SHAPE_FIELDS", "load_adapter_weights"]
