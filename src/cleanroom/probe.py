"""Base or instruct? Static markers plus a behavioural probe; the scores are returned and recorded.

A shipped chat template is *not* evidence (Qwen2.5 base repositories ship one). The signals:

* **name markers** — ``instruct``, ``chat``, ``-it``, ``sft``, ``dpo``, ``rlhf`` in the model's *own* name:
  the last component of the path, of the GGUF file name and of config ``_name_or_path``. Parent folders
  are not the model's name (``runs/<id>/sft/adapter`` is an adapter directory inside a run, not an SFT
  release), so they are never matched;
* **generation eos** — ``generation_config.eos_token_id`` (or the config's / tokenizer's eos) contains an
  end-of-turn ID such as ``<|im_end|>``: instruct releases stop generation at the end of a turn;
* **behavioural probe** — after ChatML-formatted exchanges whose assistant answer is complete,
  ``p_eot = mean P(<|im_end|> | exchange)``; and after ``...<|im_end|>\\n<|im_start|>``,
  ``p_role = mean P(next token starts a role word)``. An instruct model was trained on exactly this
  format and puts most of its mass there (SmolLM2-135M-Instruct); a base model (random weights: about
  1/vocab ≈ 7e-6) does not.

Decision (issue 3: combine the evidence, a shipped template is not evidence):

* a static marker — a name marker or an end-of-turn ID in the eos — is decisive on its own: a release
  that names itself instruct or stops at the end of a turn was post-trained for chat;
* the behavioural probe alone is decisive only when very strong, ``p_eot >= PROBE_DECISIVE`` (0.8);
* ``PROBE_THRESHOLD <= p_eot < PROBE_DECISIVE`` (0.2 to 0.8) is reported as a warning with its score,
  not a refusal.

Why the probe alone needs a strong score: the threshold was never calibrated on real base models, and
base models pretrained on web text *have seen ChatML* (Qwen2.5 base ships the template; chat transcripts
are in its pretraining data), so a base model may put notable mass on ``<|im_end|>`` after a complete
ChatML answer. Refusing the main target on that alone would be a false alarm that blocks the run; a warning
keeps the score visible in provenance and in ``inspect-model``. ``p_role`` is reported but never decides:
after ``<|im_start|>`` any model that has seen ChatML predicts a role word (SmolLM2-135M-Instruct: 0.999).
For reference, SmolLM2-135M-Instruct scores ``p_eot`` = 0.44 (flagged by its name and its eos anyway);
a random-weight base about 1/vocab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cleanroom.control_tokens import ids_of
from cleanroom.guard import encode

PROBE_THRESHOLD = 0.2  # p_eot at or above: reported as a warning with its score
PROBE_DECISIVE = 0.8  # p_eot at or above: instruct on the probe alone
_NAME_MARKER = re.compile(r"(instruct|chat|(^|[-_.])it($|[-_.])|sft|dpo|rlhf)", re.IGNORECASE)
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
_EXCHANGES = (
    ("What is 2 + 2?", "2 + 2 = 4."),
    ("Name the capital of France.", "The capital of France is Paris."),
    ("Say hello.", "Hello!"),
)


@dataclass(frozen=True)
class ProbeResult:
    """The base-or-instruct decision with every signal that went into it."""

    is_instruct: bool
    reasons: tuple[str, ...]
    name_markers: tuple[str, ...]
    eot_in_eos: bool
    p_eot: float | None
    p_role: float | None
    threshold: float = PROBE_THRESHOLD
    notes: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())
    decisive: float = PROBE_DECISIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "is_instruct": self.is_instruct,
            "reasons": list(self.reasons),
            "name_markers": list(self.name_markers),
            "eot_in_eos": self.eot_in_eos,
            "p_eot": self.p_eot,
            "p_role": self.p_role,
            "threshold": self.threshold,
            "decisive": self.decisive,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    vocab = tokenizer.get_vocab()
    return {int(vocab[t]) for t in _END_OF_TURN if t in vocab}


def name_markers(*names: Any) -> tuple[str, ...]:
    """Instruct markers found in the given names: only the last path component of each (the model's own
    name), never a parent folder."""
    found = []
    for name in names:
        if not name:
            continue
        tail = str(name).replace("\\", "/").rstrip("/").split("/")[-1]
        found += [f"{m.group(1).lower()} in {tail!r}" for m in _NAME_MARKER.finditer(tail)]
    return tuple(dict.fromkeys(found))


def behavioural_scores(model: Any, tokenizer: Any) -> tuple[float, float] | None:
    """``(p_eot, p_role)`` from ChatML exchanges built by ID (the control IDs are inserted directly)."""
    import torch  # heavy optional: torch

    vocab = tokenizer.get_vocab()
    if "<|im_start|>" not in vocab or "<|im_end|>" not in vocab:
        return None
    start, end = vocab["<|im_start|>"], vocab["<|im_end|>"]
    nl = encode(tokenizer, "\n", add_bos=False)
    role_ids = {encode(tokenizer, w, add_bos=False)[0] for w in ("user", "assistant", "system")}
    head = encode(tokenizer, "", add_bos=True)  # the BOS a BOS-required model starts with, else nothing

    def turn(role: str, text: str | None) -> list[int]:
        body = [start] + encode(tokenizer, role, add_bos=False) + nl
        return body if text is None else body + encode(tokenizer, text, add_bos=False)

    eot_prompts = [head + turn("user", q) + [end] + nl + turn("assistant", a) for q, a in _EXCHANGES]
    role_prompts = [head + turn("user", q) + [end] + nl + [start] for q, _ in _EXCHANGES]
    device = next(model.parameters()).device
    p_eot, p_role = [], []
    with torch.no_grad():
        for ids in eot_prompts + role_prompts:
            logits = model(torch.tensor([ids], device=device)).logits[0, -1].float()
            probs = torch.softmax(logits, dim=-1)
            if ids in eot_prompts:
                p_eot.append(float(probs[end]))
            else:
                p_role.append(float(probs[sorted(role_ids)].sum()))
    return sum(p_eot) / len(p_eot), sum(p_role) / len(p_role)


def probe_model(
    tokenizer: Any, *, model: Any = None, config: Any = None, generation_config: Any = None, names: tuple = ()
) -> ProbeResult:
    """Combine the static markers with the behavioural probe (when ``model`` is given)."""
    eot = end_of_turn_ids(tokenizer)
    markers = name_markers(*names, getattr(config, "_name_or_path", None))
    eos_ids = ids_of(getattr(generation_config, "eos_token_id", None)) | ids_of(getattr(config, "eos_token_id", None))
    eot_in_eos = bool(eos_ids & eot)
    reasons = [f"name marker: {m}" for m in markers]
    if eot_in_eos:
        reasons.append(f"eos {sorted(eos_ids)} contains an end-of-turn ID {sorted(eos_ids & eot)}")
    notes: list[str] = []
    scores = behavioural_scores(model, tokenizer) if model is not None else None
    if model is None:
        notes.append("behavioural probe not run (no weights loaded)")
    elif scores is None:
        notes.append("behavioural probe not applicable (no ChatML tokens in the vocabulary)")
    p_eot, p_role = scores if scores is not None else (None, None)
    warnings: list[str] = []
    if p_eot is not None and p_eot >= PROBE_DECISIVE:
        reasons.append(f"behavioural probe: P(<|im_end|>) = {p_eot:.3f} >= {PROBE_DECISIVE} (decisive alone)")
    elif p_eot is not None and p_eot >= PROBE_THRESHOLD:
        warnings.append(
            f"behavioural probe: P(<|im_end|>) = {p_eot:.3f} >= {PROBE_THRESHOLD} but < {PROBE_DECISIVE}: "
            "chat-like, not decisive alone (base models that saw ChatML in pretraining score here)"
        )
    is_instruct = bool(reasons)
    return ProbeResult(
        is_instruct=is_instruct,
        reasons=tuple(reasons),
        name_markers=markers,
        eot_in_eos=eot_in_eos,
        p_eot=p_eot,
        p_role=p_role,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


__all__ = ["PROBE_DECISIVE", "PROBE_THRESHOLD", "ProbeResult", "behavioural_scores", "name_markers", "probe_model"]
