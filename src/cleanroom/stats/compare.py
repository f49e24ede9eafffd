"""``eval compare``: paired comparison of IFEval-style verdict files, with Holm across the family.

Each verdict file holds one JSON line per prompt::

    {"key": ..., "instruction_id_list": [...], "response": "...",
     "strict": {"follow_all_instructions": bool, "follow_instruction_list": [bool, ...]},
     "loose": {...}, "provenance": {...}}

Files are paired on ``key`` (every file must hold the same keys). With files A, B, C the family
is A–B, B–C, A–C (base→SFT, SFT→DPO, base→DPO); differences are always second − first.

- ``level="prompt"``: one pass/fail per key (``follow_all_instructions``) → mid-p McNemar,
  Newcombe CI, Cohen's h, MDE from Connor's formula at the observed discordance.
- ``level="instruction"``: one pass/fail per (key, instruction index); instructions of one prompt
  are correlated, so the difference uses a cluster-robust (by key) SE with C/(C−1) correction and
  t(C−1): CI, Wald-t p-value and MDE. If no cluster varies (SE = 0) it falls back to the
  prompt-level formulas on the instruction counts, so the interval never has zero width.

The minimum-n rule applies to the number of paired keys at both levels. Reading and checking the files
(their digests, one file given twice) is :mod:`cleanroom.stats.verdict_files`; whether they may be compared
is :mod:`cleanroom.stats.comparability`. Each waiver has its own reason and is reported with it on every row:
``override_reason`` waives the minimum n, ``difference_reason`` the differences named in ``allow_differences``;
one never stands in for the other, so a reason given for one gate cannot silently open the other.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from cleanroom.errors import IncomparableError, InputError, StatisticsError
from cleanroom.stats.comparability import find_differences, split_allowed
from cleanroom.stats.intervals import check_confidence, clustered_mean_se
from cleanroom.stats.paired import PairedAccuracy, cohens_h, compare_paired_binary, holm
from cleanroom.stats.power import mde_from_se, mde_paired_binary
from cleanroom.stats.verdict import DEFAULT_MIN_N, require_min_n, verdict_for
from cleanroom.stats.verdict_files import (
    Verdicts,
    check_distinct_files,
    check_same_keys,
    read_verdict_file,
)

LEVELS = ("prompt", "instruction")
#: The per-comparison fields issue 5 documents for ``eval compare --json``, in this order.
JSON_FIELDS = (
    "a", "b", "n", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high",
    "p_value", "p_holm", "effect_size", "mde", "verdict",
)
#: Appended after :data:`JSON_FIELDS`: why a verdict was given below the minimum n (null when it was not), why
#: the differences accepted with --allow-difference are acceptable (null when none was), what the files were held
#: equal on, each accepted difference, the conditions no file recorded (not compared), and ``notes``: every caveat
#: line the Markdown prints under the table for this row, word for word.
JSON_EXTRA_FIELDS = ("override_reason", "difference_reason", "held_equal", "allowed_differences", "not_compared",
                     "notes")


@dataclass(frozen=True)
class ComparisonRow(PairedAccuracy):
    """One comparison B vs A: the paired accuracies, then the test, Holm and the verdict.
    ``to_json()`` gives the documented command-line fields plus each waiver with its reason and the
    caveat lines (:meth:`notes`), so a small-n verdict never leaves without its reason; the rest
    (level, mode, method, counts) is kept here for reports. The fields after ``allowed_differences``
    have defaults so that a run's ``eval/comparison.json`` written before them still loads."""

    a: str
    b: str
    p_value: float
    p_holm: float
    effect_size: float
    mde: float
    verdict: str
    level: str
    mode: str
    method: str
    n_keys: int
    only_a: int
    only_b: int
    confidence: float
    override_reason: str | None
    held_equal: tuple[str, ...] = ()
    allowed_differences: tuple[str, ...] = ()
    difference_reason: str | None = None
    not_compared: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    identical_outputs: bool = False
    min_n: int = DEFAULT_MIN_N

    def file_notes(self) -> list[str]:
        """The caveats shared by every row of one comparison: each waiver with its reason, and what was not checked."""
        notes = []
        if self.override_reason:
            notes.append(f"Below the minimum n ({self.n_keys} paired keys < {self.min_n}); verdict given by override: "
                         f"{self.override_reason}")
        if self.allowed_differences:
            notes.append(f"Differences accepted by override ({self.difference_reason}): "
                         + "; ".join(self.allowed_differences))
        if self.not_compared:
            notes.append("Not compared, because no file recorded them (the files may differ in them): "
                         + "; ".join(self.not_compared))
        if self.unverified:
            notes.append("Conditions taken as written, with no record digest to check them against "
                         "(records without provenance.content_sha256): " + ", ".join(self.unverified))
        return notes

    def pair_notes(self) -> list[str]:
        """The caveats of this pair alone."""
        if not self.identical_outputs:
            return []
        return [f"{self.a} and {self.b} hold the same responses and verdicts at every key: the same outputs "
                "scored twice, or a model that did not change."]

    def notes(self) -> list[str]:
        return self.file_notes() + self.pair_notes()

    def to_json(self) -> dict[str, object]:
        full = asdict(self) | {"notes": self.notes()}
        return {k: full[k] for k in JSON_FIELDS + JSON_EXTRA_FIELDS}


def _labels(paths: Sequence[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    return stems if len(set(stems)) == len(stems) else [str(p) for p in paths]


def compare_verdict_files(
    paths: Sequence[Path | str],
    *,
    level: str = "prompt",
    mode: str = "strict",
    min_n: int = DEFAULT_MIN_N,
    override_reason: str | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    alpha: float = 0.05,
    allow_differences: Sequence[str] = (),
    difference_reason: str | None = None,
) -> list[ComparisonRow]:
    """Compare 2 or 3 verdict files (A–B; or A–B, B–C, A–C) and decide each with Holm-adjusted p.

    Two waivers, each with its own reason, each reported with it on every row (:meth:`ComparisonRow.notes`):

    - ``override_reason`` waives the minimum n (:func:`~cleanroom.stats.verdict.require_min_n`) and nothing else;
    - ``difference_reason`` accepts the differences named in ``allow_differences`` and nothing else.

    The files must have been produced under the same conditions except the model
    (:mod:`cleanroom.stats.comparability`): otherwise :class:`IncomparableError` (exit 1) lists each
    difference, unless its field is in ``allow_differences``. A condition no file recorded is not compared
    and the rows say so (cleanroom's scorers record the conditions on every verdict).
    The same file given twice is refused (InputError); two files with the same outputs are compared, with a note.

    ``seed`` is accepted for the contract; pass/fail comparisons are closed-form and draw no
    random numbers, so results are identical for every seed and across processes.
    """
    del seed
    if level not in LEVELS:
        raise StatisticsError(f"level={level!r}; expected one of {LEVELS}")
    if len(paths) not in (2, 3):
        raise StatisticsError(f"eval compare takes 2 or 3 verdict files (A B [C]); got {len(paths)}")
    conf = check_confidence(confidence)
    files = [read_verdict_file(p, mode=mode) for p in paths]
    check_distinct_files(files)
    labels = _labels([f.path for f in files])
    keys = check_same_keys(files)
    checked = _check_comparable(files, labels, keys, allow_differences, difference_reason)
    override = require_min_n(len(keys), min_n=min_n, override_reason=override_reason, what="eval compare")
    if level == "instruction":
        _check_same_instruction_lists(files, keys)
    pairs = [(0, 1)] if len(files) == 2 else [(0, 1), (1, 2), (0, 2)]
    partial = [_pair_test(files[i], files[j], keys, level, conf, alpha) for i, j in pairs]
    p_adj = holm([r["p_value"] for r in partial], alpha=alpha)
    rows = []
    for (i, j), r, ph in zip(pairs, partial, p_adj, strict=True):
        rows.append(
            ComparisonRow(
                a=labels[i], b=labels[j], p_holm=float(ph),
                verdict=verdict_for(r["difference"], float(ph), r["mde"], alpha=alpha),
                level=level, mode=mode, n_keys=len(keys), confidence=conf, override_reason=override,
                identical_outputs=files[i].outputs_sha256 == files[j].outputs_sha256,
                min_n=max(min_n, DEFAULT_MIN_N), **checked, **r,
            )
        )
    return rows


def _check_same_instruction_lists(files: Sequence[Verdicts], keys: Sequence[Hashable]) -> None:
    """Instruction-level pairing needs every file to score the same number of instructions per key."""
    for f in files[1:]:
        for k in keys:
            if len(f.instructions[k]) != len(files[0].instructions[k]):
                raise InputError(
                    f"key {k!r}: {files[0].path} scores {len(files[0].instructions[k])} instruction(s) but "
                    f"{f.path} scores {len(f.instructions[k])}; instruction-level pairing needs the same list"
                )


def _pair_test(a: Verdicts, b: Verdicts, keys: Sequence[Hashable], level: str, conf: float, alpha: float) -> dict:
    """One pair's test before Holm: per prompt, or per instruction clustered by prompt."""
    if level == "prompt":
        x = np.array([a.prompt[k] for k in keys])
        y = np.array([b.prompt[k] for k in keys])
        return _prompt_level(x, y, conf, alpha)
    x = np.array([v for k in keys for v in a.instructions[k]])
    y = np.array([v for k in keys for v in b.instructions[k]])
    cluster = np.repeat(np.arange(len(keys)), [len(a.instructions[k]) for k in keys])
    return _instruction_level(x, y, cluster, conf, alpha)


def _check_comparable(
    files: Sequence[Verdicts], labels: Sequence[str], keys: Sequence[Hashable], allow: Sequence[str],
    reason: str | None,
) -> dict[str, Any]:
    """The row fields that say what was compared: held equal, accepted differences and their reason, not
    compared, unverified files. IncomparableError (exit 1) listing each refused difference; StatisticsError
    (exit 2) for an allowed field that does not differ, or a difference allowed without its own reason."""
    reason = reason.strip() if reason else None
    if reason and not allow:
        raise StatisticsError("--difference-reason was given without --allow-difference FIELD: it waives nothing on "
                              "its own (the minimum n has its own --override-reason); name the field(s) it accepts")
    per_file = [{k: f.conditions[k] for k in keys} for f in files]
    found = find_differences(per_file, labels)
    refused, accepted = split_allowed(found.differences, allow)
    unused = [a for a in allow if not any(d.field == a or d.field.startswith(a + ".") for d in accepted)]
    if unused:
        unrecorded = [text for name, text in found.not_compared_by_field.items()
                      if name == unused[0] or name.startswith(unused[0] + ".")]
        why = (f"no file recorded it, so it is not compared and the output says so ({unrecorded[0]}); drop "
               "--allow-difference for it") if unrecorded else f"the files do not differ in {unused[0]!r}"
        raise StatisticsError(f"--allow-difference {unused[0]}: {why}; "
                              f"differences found: {[d.field for d in found.differences] or 'none'}")
    if accepted and not reason:
        raise StatisticsError("--allow-difference needs --difference-reason TEXT saying why the difference is "
                              "acceptable (--override-reason waives only the minimum n)")
    if refused:
        listed = "; ".join(f"{d.field}: {d.detail}" for d in refused)
        raise IncomparableError(
            f"eval compare: the files differ in more than the model — {listed}. Compare results produced under "
            "the same prompts, rendering, scorer and generation settings, or accept a difference with "
            "--allow-difference FIELD --difference-reason TEXT"
        )
    return {
        "held_equal": tuple(found.held_equal), "not_compared": tuple(found.not_compared),
        "allowed_differences": tuple(f"{d.field}: {d.detail}" for d in accepted),
        "difference_reason": reason if accepted else None,
        "unverified": tuple(f"{f.label} ({f.undigested} of {len(f.prompt)} records)" for f in files if f.undigested),
    }


def _prompt_level(x: np.ndarray, y: np.ndarray, conf: float, alpha: float) -> dict:
    res = compare_paired_binary(x, y, confidence=conf)
    accuracy = {f.name: getattr(res, f.name) for f in fields(PairedAccuracy)}
    return dict(
        **accuracy, p_value=res.p_midp, effect_size=res.cohens_h,
        mde=mde_paired_binary(res.n, (res.only_a + res.only_b) / res.n, alpha=alpha),
        method=res.method, only_a=res.only_a, only_b=res.only_b,
    )


def _instruction_level(x: np.ndarray, y: np.ndarray, cluster: np.ndarray, conf: float, alpha: float) -> dict:
    d = y.astype(float) - x.astype(float)
    est, se, c = clustered_mean_se(d, cluster)
    if se == 0.0 or c < 2:
        # No cluster varies around the mean difference: the sandwich SE is 0. Use the count-based
        # formulas on the instruction pairs instead of a zero-width interval.
        row = _prompt_level(x, y, conf, alpha)
        row["method"] = "no within-key variation: " + row["method"] + " on instruction pairs"
        return row
    df = c - 1
    half = float(sps.t.ppf(0.5 + conf / 2, df)) * se
    p = float(2 * sps.t.sf(abs(est) / se, df))
    p_a, p_b = float(x.mean()), float(y.mean())
    return dict(
        n=int(d.size), accuracy_a=p_a, accuracy_b=p_b, difference=est, ci_low=est - half, ci_high=est + half,
        p_value=p, effect_size=cohens_h(p_a, p_b), mde=mde_from_se(se, df, alpha=alpha),
        method=f"cluster-robust (by key, C={c}) Wald-t, df={df}",
        only_a=int(np.sum(x & ~y)), only_b=int(np.sum(~x & y)),
    )


def _p_method(method: str) -> str:
    """The test behind ``p_value``, from a row's method: mid-p McNemar at prompt level and in the
    instruction-level fallback, the clustered Wald-t otherwise."""
    return "mid-p McNemar" if "mid-p McNemar" in method else "clustered t"


def _fmt_p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def format_markdown(rows: Sequence[ComparisonRow]) -> str:
    """A Markdown table, one comparison per row, with the method and any override as notes."""
    if not rows:
        raise StatisticsError("format_markdown: no comparison rows to format")
    conf_pct = f"{rows[0].confidence * 100:g}%"
    p_methods = {_p_method(r.method) for r in rows}
    p_name = f"p ({p_methods.pop()})" if len(p_methods) == 1 else "p (method per row, see notes)"
    head = (
        f"| A | B | n | acc A | acc B | Δ (B−A) [{conf_pct} CI] | {p_name} | p (Holm) | Cohen's h | MDE | verdict |\n"
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|\n"
    )
    body = "".join(
        f"| {r.a} | {r.b} | {r.n} | {r.accuracy_a:.3f} | {r.accuracy_b:.3f} | "
        f"{r.difference:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] | {_fmt_p(r.p_value)} | {_fmt_p(r.p_holm)} | "
        f"{r.effect_size:+.3f} | {r.mde:.3f} | {r.verdict} |\n"
        for r in rows
    )
    notes = [f"\nLevel: {rows[0].level}, mode: {rows[0].mode}, {rows[0].n_keys} paired keys. "
             f"Method: {rows[0].method}. Holm across {len(rows)} comparison(s); MDE at 80% power, α=0.05."]
    for r in rows:
        if r.method != rows[0].method:
            notes.append(f"{r.a} vs {r.b}: {r.method}.")
    if rows[0].held_equal:
        notes.append(f"Held equal across the files: {', '.join(rows[0].held_equal)}.")
    notes += rows[0].file_notes() + [line for r in rows for line in r.pair_notes()]
    return head + body + "\n".join(notes) + "\n"
