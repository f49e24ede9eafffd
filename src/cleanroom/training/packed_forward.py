"""Padding-free DPO: each padded batch of chosen and rejected rows runs through the model as one packed row.

trl 1.16's ``DPOTrainer`` switches its own ``padding_free`` off, so every DPO forward (policy, reference, the
reference precompute) computes the padding of its ``[2B, L]`` batch: on length-varied pairs more than half the
tokens. TRL calls the model with ``labels`` and ``fused_lm_head=True`` (its fused LM head returns per-token
log-probs, shifted, ``[2B, L-1]``, zero where the label is ``-100``) and sums them per row. :func:`install`
wraps that forward: the real tokens of the batch (``attention_mask``) go in as one row ``[1, T]`` with position IDs
restarting at 0 for each row, as transformers' padding-free path expects (SDPA then masks attention per packed
sequence, Unsloth's varlen attention reads the same restarts), and every per-token output comes back in the padded
layout, so TRL's sums, its ``chunk(2)`` into chosen and rejected and the guard's batch checks see the very
tensors they saw padded. Each row's first label is set to ``-100`` in the packed row: there it would be predicted
from the previous row's last token.

The batch was checked by the guard in the collator, row by row, before packing; packing needs each row's real
tokens contiguous (``GateError`` otherwise), and each packed forward is counted on the model so a run that asked
for packing and never packed (another backend's forward) fails instead of reporting the lever as on.
"""

from __future__ import annotations

import types
from typing import Any

from cleanroom.errors import GateError

#: the model attribute that holds the number of packed forwards (its presence marks the wrapper as installed)
COUNT_ATTR = "cleanroom_packed_forwards"


def pack(input_ids: Any, attention_mask: Any, labels: Any) -> tuple[Any, Any, Any, Any]:
    """``(ids [1, T], position_ids [1, T], labels [1, T], keep [N, L])`` for the real tokens of a padded batch."""
    keep = attention_mask.bool()
    starts = keep[:, 0].long() + (keep[:, 1:] & ~keep[:, :-1]).sum(dim=1)
    if bool((starts != 1).any()):  # the one synchronisation: a row with no real token or a gap in its mask
        row = int((starts != 1).nonzero()[0])
        raise GateError(f"padding-free DPO: row {row} of the batch has {int(starts[row])} runs of real tokens in its "
                        "attention mask (expected one contiguous run), so it cannot be packed; set "
                        "padding_free: false for the DPO stage")
    positions = keep.long().cumsum(dim=1) - 1
    first = keep & (positions == 0)
    packed_labels = labels.masked_fill(first, -100)[keep][None]
    return input_ids[keep][None], positions[keep][None], packed_labels, keep


def unpack(values: Any, keep: Any) -> Any:
    """Shifted per-token values of the packed row (``[1, T-1]``) in the padded layout ``[N, L-1]``: position
    ``(i, j)`` (token ``j + 1`` of row ``i`` predicted from token ``j``) where both tokens are real, else zero."""
    import torch  # heavy optional: torch

    offsets = keep.flatten().long().cumsum(dim=0).view(keep.shape) - 1  # packed index of each real token
    valid = keep[:, :-1] & keep[:, 1:]
    source = offsets[:, :-1].clamp(min=0, max=values.shape[1] - 1)
    return torch.where(valid, values[0][source], torch.zeros((), dtype=values.dtype, device=values.device))


def install(model: Any) -> None:
    """Wrap ``model.forward`` (the transformers model TRL gave its fused LM head; under peft the base model) so
    that calls with ``fused_lm_head=True`` run packed; any other call passes through unchanged. Idempotent."""
    if hasattr(model, COUNT_ATTR):
        return
    inner = model.forward

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        ids, mask, labels = kwargs.get("input_ids"), kwargs.get("attention_mask"), kwargs.get("labels")
        if (args or not kwargs.get("fused_lm_head") or ids is None or mask is None or labels is None
                or kwargs.get("position_ids") is not None or kwargs.get("shift_labels") is not None
                or int(ids.shape[1]) < 2):
            return inner(*args, **kwargs)
        packed_ids, positions, packed_labels, keep = pack(ids, mask, labels)
        out = inner(**{**kwargs, "input_ids": packed_ids, "attention_mask": None, "position_ids": positions,
                       "labels": packed_labels, "use_cache": False})
        setattr(self, COUNT_ATTR, getattr(self, COUNT_ATTR) + 1)
        for name, value in list(out.items()):
            if getattr(value, "shape", None) == packed_labels[:, 1:].shape:
                out[name] = unpack(value, keep)
        return out

    setattr(model, COUNT_ATTR, 0)
    model.forward = types.MethodType(forward, model)


def require_packed(model: Any, when: str) -> int:
    """The number of packed forwards so far; ``GateError`` when padding-free was asked for and none ran packed."""
    count = int(getattr(model, COUNT_ATTR, 0))
    if count == 0:
        raise GateError(f"padding-free DPO: no forward ran packed {when} (this backend's DPO forward does not go "
                        "through TRL's fused LM head), so the lever would be recorded as on without having run; "
                        "set padding_free: false for the DPO stage or train on backend peft")
    return count


__all__ = ["COUNT_ATTR", "install", "pack", "require_packed", "unpack"]
