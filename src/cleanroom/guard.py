"""The contamination guard: no chat-control token, template or stray EOS reaches a base-model path.

Everything is decided by token **ID**, never by string: a tokenizer may render two different IDs to
the same text, and the text ``<|im_start|>`` typed by a user must stay ordinary subwords. The forbidden
set is every added token flagged special plus every chat-control token (for Qwen2.5, 151644-151664,
including the non-special ``<tool_call>``, FIM and repo/file tokens) — all except the base EOS, which is
allowed only as the single final token of a completion.

:func:`scan_ids` is vectorised: the forbidden set becomes a boolean lookup table ``bad[id]`` and a
batch of ``N`` tokens costs one gather ``bad[flat]`` (O(N), no Python loop over tokens). The
benchmark in ``benchmarks/bench_scan_ids.py`` prints the throughput.

:func:`recheck` compares the tokenizer and model against the snapshot :class:`~cleanroom.loader.CleanModelLoader`
stored on them, so a trainer that re-enables the chat template or rewrites eos/pad is caught after the fact.

This module holds the checks on IDs (:func:`scan_ids`, :func:`check_loss_mask`) and the rendering that
runs them (:func:`encode`, :func:`render_example`, :func:`check_pair`); the forbidden-ID sets live in
:mod:`cleanroom.control_tokens` and the snapshot/recheck in :mod:`cleanroom.clean_state`, both
re-exported here so that ``from cleanroom import guard`` reaches the whole guard. Callers go through
``guard.NAME``, so a test that switches an entry point off (``monkeypatch.setattr(guard, "scan_ids",
...)``) switches it off for :func:`render_example` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from cleanroom.clean_state import SNAPSHOT_ATTR, SNAPSHOT_PROBE_TEXT, VOLATILE_CONFIG_KEYS, recheck, snapshot
from cleanroom.control_tokens import (
    BOS_REQUIRED_ATTR,
    CONTROL_TEXT,
    added_tokens,
    base_eos_id,
    forbidden_ids,
    literal_control_strings,
    refuse_chat_template,
    required_bos_id,
)
from cleanroom.errors import ContaminationError, InputError


def _token_text(tokenizer: Any, token_id: int) -> str:
    if tokenizer is None:
        return ""
    try:
        return f" {tokenizer.convert_ids_to_tokens(int(token_id))!r}"
    except Exception:  # an ID beyond the vocabulary: the ID itself is the evidence
        return ""


def _flatten(sequences: Any, mask: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(flat ids of the valid positions, length of each record)`` for ragged or padded input."""
    if hasattr(sequences, "detach"):  # torch.Tensor without importing torch
        sequences = sequences.detach().cpu().numpy()
    if mask is not None and hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    if isinstance(sequences, np.ndarray):
        if sequences.ndim == 1:
            sequences = sequences[None, :]
        if sequences.ndim != 2:
            raise InputError(f"scan_ids: expected a 2-D batch of token IDs, got shape {sequences.shape}")
        arr = sequences.astype(np.int64, copy=False)
        if mask is not None:
            m = np.asarray(mask).astype(bool)
            if m.shape != arr.shape:
                raise InputError(f"scan_ids: mask shape {m.shape} differs from the batch shape {arr.shape}")
            return arr[m], m.sum(axis=1)
        if lengths is not None:
            lens = np.asarray(lengths, dtype=np.int64)
            m = np.arange(arr.shape[1])[None, :] < lens[:, None]
            return arr[m], lens
        return arr.reshape(-1), np.full(arr.shape[0], arr.shape[1], dtype=np.int64)
    seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    if mask is not None or lengths is not None:
        raise InputError("scan_ids: mask/lengths only apply to a padded 2-D batch, not to a list of sequences")
    flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    return flat, lens


def scan_ids(
    sequences: Any,
    forbidden: frozenset[int] | Sequence[int],
    *,
    final_eos_id: int | None = None,
    where: str = "batch",
    mask: Any = None,
    lengths: Any = None,
    tokenizer: Any = None,
    record_offset: int = 0,
    bos_id: int | None = None,
) -> None:
    """Raise :class:`ContaminationError` at the first forbidden token in any sequence.

    ``sequences`` is a list of ID lists, or a 2-D numpy array / torch tensor whose padding is excluded
    by ``mask`` (an attention mask, left or right padding) or ``lengths``. With ``final_eos_id`` set,
    each sequence must end with exactly one EOS and contain no other (EOS doubled, missing or cut by
    truncation are all errors); without it, the base EOS is not checked (it is not in ``forbidden``).
    Positions are counted within the unpadded sequence; records from ``record_offset``.

    ``bos_id`` (by default :func:`required_bos_id` of ``tokenizer``: set only for a Llama-style model that
    needs BOS) is allowed exactly once, at position 0 of a sequence; anywhere else, including a doubled
    BOS at position 1, it is a finding like any forbidden token.
    """
    if bos_id is None and tokenizer is not None:
        bos_id = required_bos_id(tokenizer)
    flat, lens = _flatten(sequences, mask, lengths)
    if flat.size and int(flat.min()) < 0:
        raise InputError(f"{where}: negative token ID {int(flat.min())} in input_ids (labels are not scanned)")
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])) if lens.size else np.zeros(0, dtype=np.int64)
    at = _Where(flat, starts, where, tokenizer, record_offset)
    hit = _first_forbidden(flat, starts, lens, forbidden, bos_id)
    if hit is not None:
        why = (
            f"BOS {bos_id} is allowed once, at position 0 only (doubled or injected BOS)"
            if bos_id is not None and int(flat[hit]) == int(bos_id)
            else "a chat-control/special token; base-model data must not contain it — regenerate with the "
            "clean loader's tokenizer (split_special_tokens=True, no chat template)"
        )
        at.fail(hit, why)
    if final_eos_id is not None:
        _check_final_eos(at, lens, final_eos_id)


class _Where:
    """Turns an index into the flat batch into ``record R, token P is ID I 'text'`` for a finding."""

    def __init__(self, flat: np.ndarray, starts: np.ndarray, where: str, tokenizer: Any, record_offset: int):
        self.flat, self.starts, self.where = flat, starts, where
        self.tokenizer, self.record_offset = tokenizer, record_offset

    def fail(self, index: int, why: str) -> NoReturn:
        rec = int(np.searchsorted(self.starts, index, side="right") - 1)
        pos = index - int(self.starts[rec])
        tid = int(self.flat[index])
        raise ContaminationError(
            f"{self.where}: record {rec + self.record_offset}, token {pos} is ID {tid}"
            f"{_token_text(self.tokenizer, tid)}: {why}"
        )


def _first_forbidden(
    flat: np.ndarray, starts: np.ndarray, lens: np.ndarray, forbidden: frozenset[int] | Sequence[int], bos_id: int | None
) -> int | None:
    """Index of the first forbidden ID (or misplaced BOS) in *flat*: one table gather, no loop over tokens."""
    forb = np.fromiter((int(i) for i in forbidden), dtype=np.int64)
    if bos_id is not None:
        forb = np.append(forb, int(bos_id))
    if not (flat.size and forb.size):
        return None
    size = int(max(flat.max(), forb.max())) + 1
    table = np.zeros(size, dtype=bool)
    table[forb] = True
    hits = table[flat]
    if bos_id is not None:
        first = starts[lens > 0]
        hits[first[flat[first] == int(bos_id)]] = False  # the one BOS a BOS-required model starts with
    return int(np.argmax(hits)) if hits.any() else None


def _check_final_eos(at: _Where, lens: np.ndarray, final_eos_id: int) -> None:
    """Each sequence ends with exactly one EOS and holds no other (doubled, missing or truncated EOS)."""
    flat, starts = at.flat, at.starts
    ends = starts + lens - 1
    eos_at = np.flatnonzero(flat == int(final_eos_id))
    stray = eos_at[~np.isin(eos_at, ends[lens > 0])]
    if stray.size:
        at.fail(int(stray[0]), "EOS before the end of the sequence (doubled EOS); only one final EOS is allowed")
    if (lens == 0).any():
        rec = int(np.argmax(lens == 0))
        raise ContaminationError(
            f"{at.where}: record {rec + at.record_offset} is empty; it must end with EOS {final_eos_id}"
        )
    last = flat[ends]
    missing = np.flatnonzero(last != int(final_eos_id))
    if missing.size:
        rec = int(missing[0])
        tid = int(last[rec])
        raise ContaminationError(
            f"{at.where}: record {rec + at.record_offset}, last token {int(lens[rec]) - 1} is ID {tid}"
            f"{_token_text(at.tokenizer, tid)}, not EOS {final_eos_id}: EOS missing or truncated by max length"
        )


def check_loss_mask(
    supervised: Any,
    prompt_lengths: Any,
    lengths: Any,
    *,
    where: str = "batch",
    labels: Any = None,
    input_ids: Any = None,
) -> None:
    """Raise :class:`ContaminationError` unless the loss covers exactly each completion and its EOS.

    ``supervised`` is a 2-D bool tensor, True where a token carries loss (SFT: ``labels != -100``; DPO:
    ``completion_mask``, the positions summed into the chosen/rejected log-probabilities). Row ``r`` has
    ``P_r = prompt_lengths[r]`` prompt tokens (known independently of the mask: the prompt's own encoding)
    and ``L_r = lengths[r]`` real tokens, right-padded. Then, for every position ``t``::

        supervised[r, t]  ==  (P_r <= t < L_r),      and  P_r < L_r  (at least one supervised token)

    so a prompt token with loss (whole-sequence loss), a completion token or the EOS without loss, and a
    supervised pad are all findings. With ``labels`` and ``input_ids`` (SFT), each supervised label must
    also be its own input ID (transformers shifts internally). One reduction and one host synchronisation
    per batch; the details of a finding are computed only when there is one.
    """
    import torch  # heavy optional: torch (the guard's other scans need only numpy)

    sup = torch.as_tensor(supervised).bool()
    if sup.ndim != 2:
        raise InputError(f"{where}: expected a 2-D loss mask, got shape {tuple(sup.shape)}")
    p = torch.as_tensor(prompt_lengths, device=sup.device).reshape(-1, 1)
    n = torch.as_tensor(lengths, device=sup.device).reshape(-1, 1)
    if p.shape[0] != sup.shape[0] or n.shape[0] != sup.shape[0]:
        raise InputError(f"{where}: {p.shape[0]} prompt lengths and {n.shape[0]} lengths for {sup.shape[0]} rows")
    pos = torch.arange(sup.shape[1], device=sup.device)[None, :]
    bad = sup != ((pos >= p) & (pos < n))
    if labels is not None:
        bad |= sup & (torch.as_tensor(labels) != torch.as_tensor(input_ids))
    bad_row = bad.any(dim=1) | (p >= n).squeeze(1)
    if not bool(bad_row.any()):  # the one synchronisation
        return
    row = int(bad_row.nonzero()[0])
    prompt, length = int(p[row]), int(n[row])
    if prompt >= length:
        raise ContaminationError(
            f"{where} row {row}: prompt length {prompt} leaves no completion token in {length} real tokens; "
            "nothing would be supervised — render examples with guard.render_example"
        )
    t = int(bad[row].nonzero()[0])
    got = f" (label {int(labels[row, t])})" if labels is not None else ""
    if t < prompt and sup[row, t]:
        why = (f"prompt token {t} of {prompt} carries loss{got}; the loss must cover the completion and its EOS "
               "only, never the prompt (whole-sequence loss) — keep guard.render_example's labels / TRL's completion_mask")
    elif t >= length:
        why = f"padding position {t} (real length {length}) carries loss{got}; pads must be excluded"
    elif not sup[row, t]:
        why = (f"completion token {t} (prompt {prompt}, length {length}) carries no loss; the whole completion "
               "and its EOS must be supervised")
    else:
        why = (f"completion token {t} has label {int(labels[row, t])} but input ID {int(input_ids[row, t])}; "
               "labels must be the input IDs themselves")
    raise ContaminationError(f"{where} row {row}: {why}")


def encode(tokenizer: Any, text: str, *, add_bos: bool = True) -> list[int]:
    """Encode text as ordinary subwords; literal control strings never become control IDs.

    No EOS is ever added. BOS is explicit: for a tokenizer the loader marked BOS-required (it added BOS
    as shipped, Llama-style) its ID is put once at position 0 — ``add_bos=False`` gives the bare subwords,
    for fragments spliced into a longer sequence; other tokenizers (Qwen) get no BOS either way.
    """
    ids = list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])
    bos = required_bos_id(tokenizer) if add_bos else None
    return ids if bos is None else [bos, *ids]


def _boundary_message(tokenizer: Any, prompt: str, p_ids: list[int], full: list[int]) -> str:
    """Why the prompt's IDs are not a prefix of the whole example's, with the two token strings, and the fix.

    BPE pre-tokenisation joins characters across the join (``'.' + 'Soft'`` is one pre-token ``'.Soft'``
    under Qwen's pattern, as is ``' ' + 'there'``), so the last prompt token and the first completion
    token become different tokens: the supervised answer would start in the middle of a token.
    """
    i = next((k for k, (a, b) in enumerate(zip(p_ids, full, strict=False)) if a != b), min(len(p_ids), len(full)))
    alone = tokenizer.decode(p_ids[i:])
    joined = tokenizer.decode(full[i : i + max(1, len(p_ids) - i) + 1])
    if prompt[-1:].isspace() and prompt[-1:] not in "\r\n":
        fix = "move the prompt's trailing whitespace to the start of the completion"
    else:
        fix = "put a separator between them: end the prompt with '\\n' or start the completion with ' '"
    return (f"the prompt's tokens are not a prefix of prompt+completion: the prompt ends in {alone!r} (token "
            f"{i}) but prompt+completion tokenises the boundary as {joined!r}, so the tokens at the prompt/completion "
            f"boundary merge and the answer would start mid-token; {fix}")


def render_example(
    tokenizer: Any, prompt: str, completion: str, *, max_length: int, record: Any = "?"
) -> dict[str, list[int]]:
    """Render one SFT example as ``prompt ids + completion ids + [EOS]`` with labels -100 on the prompt.

    Checks, each a :class:`ContaminationError` naming the record: the prompt's IDs are a prefix of
    the IDs of ``prompt + completion`` (otherwise the supervised boundary would split a token); the
    completion has at least one token; the whole example fits ``max_length`` (so the EOS is never cut
    off); exactly one EOS, at the end; no forbidden ID anywhere.
    """
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise InputError(f"record {record}: prompt and completion must be strings")
    eos = base_eos_id(tokenizer)
    p_ids = encode(tokenizer, prompt)
    full = encode(tokenizer, prompt + completion)
    if full[: len(p_ids)] != p_ids:
        raise ContaminationError(f"record {record}: {_boundary_message(tokenizer, prompt, p_ids, full)}")
    c_ids = full[len(p_ids) :]
    if not c_ids:
        raise ContaminationError(f"record {record}: empty completion, no supervised token besides EOS; drop it")
    input_ids = full + [eos]
    if len(input_ids) > max_length:
        raise ContaminationError(
            f"record {record}: {len(input_ids)} tokens with EOS exceed max_length={max_length}; truncation would "
            "cut the EOS — raise max_length or drop the example"
        )
    scan_ids([input_ids], forbidden_ids(tokenizer), final_eos_id=eos, where=f"record {record}", tokenizer=tokenizer)
    return {"input_ids": input_ids, "labels": [-100] * len(p_ids) + c_ids + [eos]}


def check_pair(
    tokenizer: Any, prompt: str, chosen: str, rejected: str, *, max_length: int, record: Any = "?"
) -> None:
    """Apply :func:`render_example`'s rules to both sides of a DPO pair; identical sides are an error."""
    if chosen == rejected:
        raise InputError(f"record {record}: chosen and rejected are identical; a preference pair needs two answers")
    render_example(tokenizer, prompt, chosen, max_length=max_length, record=f"{record} chosen")
    render_example(tokenizer, prompt, rejected, max_length=max_length, record=f"{record} rejected")


__all__ = [
    "BOS_REQUIRED_ATTR",
    "CONTROL_TEXT",
    "SNAPSHOT_ATTR",
    "SNAPSHOT_PROBE_TEXT",
    "VOLATILE_CONFIG_KEYS",
    "added_tokens",
    "base_eos_id",
    "check_loss_mask",
    "check_pair",
    "encode",
    "forbidden_ids",
    "literal_control_strings",
    "recheck",
    "refuse_chat_template",
    "render_example",
    "required_bos_id",
    "scan_ids",
    "snapshot",
]
