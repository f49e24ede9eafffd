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
tokens contiguous, and a fused call that cannot be packed is refused (``GateError`` both), never run padded. Each
packed forward is counted on the model (those with gradients apart: the trained policy's), so a run that asked for
packing where no forward packed (a backend whose forward bypasses TRL's fused head) fails instead of recording the
lever as on. :func:`compare` is the check that the packed rows did not attend to each other, beside a leaking row.
"""

from __future__ import annotations

import types
from typing import Any, NamedTuple

from cleanroom.errors import GateError

#: model attributes: the number of packed forwards, of those run with gradients (the trained policy's), and the
#: forward the wrapper packs around (what :func:`compare` runs padded)
COUNT_ATTR, GRAD_COUNT_ATTR, INNER_ATTR = "cleanroom_packed_forwards", "cleanroom_packed_grad_forwards", \
    "cleanroom_unpacked_forward"


class Packing(NamedTuple):
    """A padded batch's real tokens as one row, and where each padded shifted position reads from that row."""

    input_ids: Any  # [1, T]
    position_ids: Any  # [1, T]
    labels: Any  # [1, T], each row's first label -100
    source: Any  # [N, L-1]: packed shifted index of padded shifted position (i, j)
    valid: Any  # [N, L-1]: tokens j and j+1 of row i are both real


def pack(input_ids: Any, attention_mask: Any, labels: Any, *, restart: bool = True) -> Packing:
    """The real tokens of a right- or left-padded batch as one row; ``restart=False`` numbers the positions
    ``0..T-1`` instead of restarting per row (rows then attend to the rows before them: the leak control)."""
    import torch  # heavy optional: torch

    keep = attention_mask.bool()
    starts = keep[:, 0].long() + (keep[:, 1:] & ~keep[:, :-1]).sum(dim=1)
    if bool((starts != 1).any()):  # the one synchronisation: a row with no real token or a gap in its mask
        row = int((starts != 1).nonzero()[0])
        raise GateError(f"padding-free DPO: row {row} of the batch has {int(starts[row])} runs of real tokens in its "
                        "attention mask (expected one contiguous run), so it cannot be packed; set "
                        "padding_free: false for the DPO stage")
    positions = keep.long().cumsum(dim=1) - 1
    ids = input_ids[keep][None]
    packed_positions = positions[keep][None] if restart else torch.arange(ids.shape[1], device=ids.device)[None]
    offsets = keep.flatten().long().cumsum(dim=0).view(keep.shape) - 1  # packed index of each real token
    return Packing(ids, packed_positions, labels.masked_fill(keep & (positions == 0), -100)[keep][None],
                   offsets[:, :-1].clamp(min=0, max=max(ids.shape[1] - 2, 0)), keep[:, :-1] & keep[:, 1:])


def unpack(values: Any, packing: Packing) -> Any:
    """Shifted per-token values of the packed row (``[1, T-1]``) in the padded layout ``[N, L-1]``: position
    ``(i, j)`` (token ``j + 1`` of row ``i`` predicted from token ``j``) where both tokens are real, else zero."""
    import torch  # heavy optional: torch

    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    return torch.where(packing.valid, values[0][packing.source], zero)


def packed_call(inner: Any, kwargs: dict[str, Any], *, restart: bool = True) -> Any:
    """``inner(**kwargs)`` on the packed batch, every per-token output (``[1, T-1]``) back in the padded layout."""
    packing = pack(kwargs["input_ids"], kwargs["attention_mask"], kwargs["labels"], restart=restart)
    out = inner(**{**kwargs, "input_ids": packing.input_ids, "attention_mask": None,
                   "position_ids": packing.position_ids, "labels": packing.labels, "use_cache": False})
    for name, value in list(out.items()):
        if getattr(value, "shape", None) == packing.labels[:, 1:].shape:
            out[name] = unpack(value, packing)
    return out


def _is_installed(model: Any) -> bool:
    return bool(getattr(getattr(model.forward, "__func__", None), "cleanroom_packs", False))


def install(model: Any) -> None:
    """Wrap ``model.forward`` (the transformers model TRL gave its fused LM head; under peft the base model) so
    that every call with ``fused_lm_head=True`` runs packed; a fused call that cannot be packed (no attention mask
    or labels, position IDs or shifted labels already given) is a ``GateError``, any other call passes through.
    Idempotent while the wrapper is the outermost forward; a later trainer's fused head wraps over it and
    bypasses it, so the next install wraps again and restarts the counts."""
    import torch  # heavy optional: torch

    if _is_installed(model):
        return
    inner = model.forward

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("fused_lm_head"):
            return inner(*args, **kwargs)
        if (args or any(kwargs.get(k) is None for k in ("input_ids", "attention_mask", "labels"))
                or kwargs.get("position_ids") is not None or kwargs.get("shift_labels") is not None):
            given = sorted(k for k, v in kwargs.items() if v is not None)
            raise GateError(f"padding-free DPO: a fused LM-head forward came with {len(args)} positional arguments "
                            f"and keywords {given}, which cannot be packed (expected input_ids, attention_mask and "
                            "labels, no position_ids or shift_labels); set padding_free: false for the DPO stage")
        out = packed_call(inner, kwargs)
        setattr(self, COUNT_ATTR, getattr(self, COUNT_ATTR) + 1)
        if torch.is_grad_enabled():
            setattr(self, GRAD_COUNT_ATTR, getattr(self, GRAD_COUNT_ATTR) + 1)
        return out

    forward.cleanroom_packs = True  # type: ignore[attr-defined]
    setattr(model, COUNT_ATTR, 0)
    setattr(model, GRAD_COUNT_ATTR, 0)
    setattr(model, INNER_ATTR, inner)
    model.forward = types.MethodType(forward, model)


def counts(model: Any) -> tuple[int, int]:
    """(packed forwards, those with gradients) so far; (0, 0) where packing is not the model's outermost forward."""
    if not _is_installed(model):
        return 0, 0
    return int(getattr(model, COUNT_ATTR)), int(getattr(model, GRAD_COUNT_ATTR))


def require_packed(model: Any, since: tuple[int, int], when: str, *, trained: bool = False) -> int:
    """The packed forwards since ``since`` (a :func:`counts`); ``GateError`` when none ran packed, or with ``trained``
    none with gradients (the trained policy's forward), so the lever is never recorded as on without having run."""
    now = counts(model)
    done, with_grad = now[0] - since[0], now[1] - since[1]
    if done <= 0 or (trained and with_grad <= 0):
        what = "no forward" if done <= 0 else "no forward with gradients (the policy being trained)"
        raise GateError(f"padding-free DPO: {what} ran packed {when} (this backend's DPO forward does not go through "
                        "TRL's fused LM head), so the lever would be recorded as on without having run; set "
                        "padding_free: false for the DPO stage or train on backend peft")
    return done


def row_logps(forward: Any, batch: dict[str, Any], *, restart: bool | None = None) -> Any:
    """Each row's summed completion log-prob through the fused-LM-head ``forward``, as DPO sums them, no gradients:
    padded (``restart=None``), packed, or packed with positions that do not restart (``False``, the leak control)."""
    import torch  # heavy optional: torch

    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "fused_lm_head": True,
              "labels": batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100), "use_cache": False}
    with torch.no_grad():
        out = forward(**kwargs) if restart is None else packed_call(forward, kwargs, restart=restart)
    return out.log_probs.float().sum(dim=1)


def compare(model: Any, batch: dict[str, Any]) -> dict[str, dict[str, float]]:
    """:func:`row_logps` padded, packed and leaking through the forward :func:`install` wrapped on ``model``:
    ``{"packed_vs_padded": {"max": .., "mean": ..}, "leak_vs_padded": {...}}`` in nats. Packed far below the leak
    says the attention stayed inside each row."""
    if not _is_installed(model):
        raise GateError("padding-free DPO: compare() needs a model whose forward packs; call install(model) first")
    inner = getattr(model, INNER_ATTR)
    padded, packed, leak = (row_logps(inner, batch, restart=r) for r in (None, True, False))

    def gap(x: Any) -> dict[str, float]:
        d = (x - padded).abs()
        return {"max": round(float(d.max()), 4), "mean": round(float(d.mean()), 4)}

    return {"packed_vs_padded": gap(packed), "leak_vs_padded": gap(leak)}


__all__ = ["COUNT_ATTR", "GRAD_COUNT_ATTR", "Packing", "compare", "counts", "install", "pack", "packed_call",
           "require_packed", "row_logps", "unpack"]
