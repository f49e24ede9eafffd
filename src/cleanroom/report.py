"""The run report: ``report.md`` and a self-contained ``report.html`` (plots inlined as SVG).

Read only from disk (the run directory), like every verification: per-instruction-type accuracy
with Wilson whiskers for base / SFT / DPO, loss curves, data length histogram, the preflight
results, the provenance summary, cost spent vs projected, and the GO / NO-GO line for Stage 2.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from cleanroom.artifacts import atomic_write_bytes
from cleanroom.environment import dirty_label
from cleanroom.jsonl import loads
from cleanroom.plots import render_figures
from cleanroom.yaml_reader import safe_load

MODELS = ("base", "sft", "dpo")


def _load(run: Path, stage: str, name: str, unreadable: dict[str, str] | None = None) -> Any:
    """The parsed JSON file, or None when it is missing; one that cannot be read or parsed is None with
    the reason in *unreadable* (keyed by stage), so the verdict names it instead of treating it as absent."""
    path = run / stage / name
    if not path.is_file():
        return None
    try:
        return loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        if unreadable is None:
            raise
        unreadable[stage] = f"{type(exc).__name__}: {exc}"[:200]
        return None


# Every file the Stage 2 verdict reads. A missing or unreadable one is a check that did not run: NO-GO.
VERDICT_INPUTS = {
    "preflight": "preflight/results.json",
    "merge": "merge/equivalence.json",
    "dpo": "dpo/metrics.json",
    "eval": "eval/comparison.json",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _input_reasons(data: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The verdict's inputs that are present as JSON objects, and a reason for each one that is not."""
    unreadable = data.get("unreadable") or {}
    present, reasons = {}, []
    for key, name in VERDICT_INPUTS.items():
        value = data.get(key)
        if key in unreadable:
            reasons.append(f"{name} is unreadable ({unreadable[key]})")
        elif value is None:
            reasons.append(f"{name} is missing: its stage did not finish, so its check did not run")
        elif not isinstance(value, dict):
            reasons.append(f"{name} is not a JSON object ({type(value).__name__})")
        else:
            present[key] = value
    return present, reasons


def _gate_reasons(got: dict[str, dict[str, Any]]) -> list[str]:
    """Preflight, DPO step 0 and merge equivalence: each must say it held, with the numbers it held by."""
    reasons = []
    if "preflight" in got and got["preflight"].get("passed") is not True:
        reasons.append("preflight did not pass" if "passed" in got["preflight"]
                       else "preflight/results.json records no `passed`")
    if "dpo" in got and not _is_number(got["dpo"].get("step0_loss")):
        reasons.append("DPO step-0 check did not run (dpo/metrics.json has no step0_loss)")
    merge = got.get("merge")
    if merge is not None:
        if merge.get("merged") is True:
            diff: Any = merge.get("max_abs_logit_diff")
            atol: Any = merge.get("atol")
            if not (_is_number(diff) and _is_number(atol)):
                reasons.append("merge equivalence did not run (merge/equivalence.json lacks max_abs_logit_diff/atol)")
            elif diff > atol:
                reasons.append(f"merged and unmerged logits disagree (max |diff| {diff:.3g} > atol {atol:.3g})")
        elif merge.get("merged") is not False or not merge.get("reason"):
            reasons.append("merge/equivalence.json says neither merged=true with its logit check nor merged=false "
                           "with a reason")
    return reasons


def _eval_reasons(ev: dict[str, Any]) -> list[str]:
    primary = (ev.get("comparisons") or {}).get(ev.get("primary", ""), [])
    if not primary:
        return ["no evaluation comparison (eval/comparison.json has no rows for its primary metric)"]
    needed = {"a", "b", "verdict", "difference", "p_holm", "mde"}
    if not all(isinstance(r, dict) and needed <= r.keys() for r in primary):
        return [f"eval/comparison.json rows lack one of {sorted(needed)}"]
    reasons = [f"{r['b']} regressed against {r['a']} ({r['difference']:+.3f}, p_holm={r['p_holm']:.3g})"
               for r in primary if r["verdict"] == "regressed" and r["b"] in ("dpo", "sft")]
    if not any(r["a"] == "base" and r["verdict"] == "improved" for r in primary):
        mde = min((r["mde"] for r in primary if r["a"] == "base"), default=float("nan"))
        reasons.append(f"neither SFT nor DPO improved detectably on base ({ev.get('primary')}, MDE = {mde:.3f})")
    return reasons


def go_no_go(data: dict[str, Any]) -> tuple[str, list[str]]:
    """GO for Stage 2 only when every gate held AND the trained policy measurably improved on base.

    Fails closed like the GPU gate: every input in :data:`VERDICT_INPUTS` is required, and a missing or
    unreadable one (or one without the field its check needs) is a NO-GO reason naming it. A run whose
    SFT/DPO shows no detectable difference is a NO-GO too: spending Stage 2's budget on top of a policy
    that did not move is what this line exists to prevent.
    """
    got, reasons = _input_reasons(data)
    reasons += _gate_reasons(got)
    if "eval" in got:
        reasons += _eval_reasons(got["eval"])
    return ("GO" if not reasons else "NO-GO"), reasons


def collect(run: Path) -> dict[str, Any]:
    unreadable: dict[str, str] = {}
    data = {
        "preflight": _load(run, "preflight", "results.json", unreadable),
        "baseline": _load(run, "baseline", "summary.json"),
        "sft_data": _load(run, "sft_data", "stats.json"),
        "sft": _load(run, "sft", "metrics.json"),
        "merge": _load(run, "merge", "equivalence.json", unreadable),
        "pairs": _load(run, "pairs", "stats.json"),
        "dpo": _load(run, "dpo", "metrics.json", unreadable),
        "eval": _load(run, "eval", "comparison.json", unreadable),
        "run": loads((run / "run.json").read_bytes()),
        "unreadable": unreadable,
    }

    # budget and report_to are not part of the run's identity: run.json carries their latest values
    data["config"] = safe_load((run / "config.resolved.yaml").read_text()) | data["run"].get("settings", {})
    manifest = _load(run, "preflight", "manifest.json") or {}
    data["provenance"] = manifest.get("provenance", {})
    return data


def _pct(iv: dict[str, Any]) -> str:
    return f"{100 * iv['estimate']:.1f}% [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}] (n={iv['n']})"


def render_markdown(data: dict[str, Any], spent: dict[str, Any]) -> str:
    """The Markdown report: verdict, model and provenance, preflight, evaluation, training, merge, data, cost."""
    verdict, reasons = go_no_go(data)
    cfg = data["config"]
    lines = [f"# cleanroom Stage 1 report — run `{data['run']['run_id']}`", ""]
    lines += [f"**Stage 2: {verdict}**" + (f" — {'; '.join(reasons)}" if reasons else " — every gate held"), ""]
    lines += _md_model(data)
    lines += _md_preflight(data)
    lines += _md_eval(data)
    for name in ("sft", "dpo"):
        if data.get(name):
            lines += _md_training(name, data[name])
    lines += _md_merge(data.get("merge"))
    lines += _md_data(data)
    lines += ["", "## Cost", "", *_cost_table(spent, _projection(data), cfg["budget"]["price_per_hour"])]
    return "\n".join(lines) + "\n"


def _md_model(data: dict[str, Any]) -> list[str]:
    """The model, the config hash, the cleanroom version and git commit, and what was allowed."""
    cfg, prov = data["config"], data["provenance"]
    model = cfg["model"]
    lines = ["## Model and provenance", "",
             f"- model: `{model['path']}` (revision {model.get('revision') or 'as resolved'}, quantization "
             f"{model.get('quantization') or 'none'}, random_init {model.get('random_init') or 'no'})",
             f"- config sha256: `{data['run']['config_sha256']}`",
             f"- cleanroom {prov.get('cleanroom_version', '?')}, git {prov.get('git', {}).get('commit', '?')}"
             f"{dirty_label(prov.get('git', {}).get('dirty', False))}"]
    if model.get("allow_instruct"):
        lines.append(f"- **instruct model allowed**: {model.get('allow_instruct_reason')}")
    if (data.get("sft_data") or {}).get("teacher") == "programmatic":
        lines.append("- **SFT responses and pair rewrites come from the programmatic teacher** (the model cannot "
                     "write); recorded in each record's `source`/`origin` field")
    return lines


def _md_preflight(data: dict[str, Any]) -> list[str]:
    """One table row per preflight check; a failed one with its error and fix."""
    lines = ["", "## Preflight", "", "| check | passed | value |", "|---|---|---|"]
    for c in (data.get("preflight") or {}).get("checks", []):
        text = describe(c.get("value"))
        if not c["passed"]:
            text = f"{c.get('error') or ''} {text} — fix: {c.get('fix')}"
        lines.append(f"| {c['check']} | {'yes' if c['passed'] else 'NO'} | {text.replace('|', '/')} |")
    return lines


def _md_eval(data: dict[str, Any]) -> list[str]:
    """IFEval scores per model, the baseline stage's own figure, and the paired comparisons."""

    ev = data.get("eval") or {}
    if not ev:
        return []
    lines = ["", "## Evaluation (held-out eval set, same keys for every model)", "",
             "| model | prompt strict | instruction strict | prompt loose | instruction loose |", "|---|---|---|---|---|"]
    for name in MODELS:
        s = ev["summaries"].get(name)
        if s:
            lines.append(f"| {name} | {_pct(s['prompt_strict'])} | {_pct(s['instruction_strict'])} | "
                         f"{_pct(s['prompt_loose'])} | {_pct(s['instruction_loose'])} |")
    base = data.get("baseline")
    if base:
        t = data["config"].get("baseline", {}).get("temperature")
        lines += ["", f"Every row above is generated here with eval.generation; the baseline stage's own "
                  f"assessment of the base model (temperature {t}) is not part of the comparisons: prompt strict "
                  f"{_pct(base['prompt_strict'])}, instruction strict {_pct(base['instruction_strict'])}."]
    # heavy optional: scipy (the command line starts without it)
    from cleanroom.stats.compare import ComparisonRow, format_markdown

    rows = [ComparisonRow(**r) for r in ev["comparisons"][ev["primary"]]]
    return lines + ["", f"Paired comparisons ({ev['primary']}, Holm across the family):", "", format_markdown(rows)]


def _md_training(name: str, m: dict[str, Any]) -> list[str]:
    """Steps, losses, throughput and peak memory of one training stage; DPO's step-0 check."""
    losses = m["losses"]
    evals = m.get("eval_losses") or []
    held_out = f"; eval loss (held-out) {evals[0]:.4f} → {evals[-1]:.4f}" if evals else ""
    lines = ["", f"## {name.upper()}", "",
             f"- steps {m['steps']}, train loss {losses[0]:.4f} → {losses[-1]:.4f}{held_out}" if losses
             else f"- steps {m['steps']}",
             f"- {m['tokens_per_s']:.0f} tokens/s, {m['seconds']:.1f} s, peak memory "
             f"{m['peak_mem_bytes'] / 2**20:.0f} MiB ({m['peak_mem_kind']})"]
    if name == "dpo" and m.get("step0_loss") is None:
        lines.append("- step-0 loss: **not measured** (the DPO check against ln 2 is missing)")
    elif name == "dpo":
        lines.append(f"- step-0 loss {m['step0_loss']:.6f} (ln 2 = 0.693147), reward margin {m['step0_margin']:.2e}")
    return lines


def _md_merge(merge: dict[str, Any] | None) -> list[str]:
    """The merge's logit equivalence, or why nothing was merged."""
    if merge and merge.get("merged"):
        return ["", "## Merge", "", "| merged | max abs logit difference | tolerance (atol) | probe texts |",
                "|---|---:|---:|---:|",
                f"| yes | {merge['max_abs_logit_diff']:.3g} | {merge['atol']:.3g} | {merge['probes']} |"]
    if merge:
        return ["", "## Merge", "", f"- not merged: {merge.get('reason')}"]
    return []


def _md_data(data: dict[str, Any]) -> list[str]:
    """What the SFT filter kept and the pairs stage built."""
    lines: list[str] = []
    sft_data = data.get("sft_data") or {}
    if sft_data:
        lines += ["", "## Data", "",
                  f"- SFT: {sft_data['survivors']} of {sft_data['candidates']} responses kept; filtered "
                  f"{describe(sft_data['filtered']) if sft_data['filtered'] else 'none'}; "
                  f"distinct-1 {sft_data['distinct_1']:.3f}, distinct-2 {sft_data['distinct_2']:.3f}; "
                  f"{sft_data['n_types']} instruction types"]
    if data.get("pairs"):
        p = data["pairs"]
        skipped = describe(p["skipped"]) if p["skipped"] else "none"
        lines.append(f"- pairs: {p['pairs']} from {p['instructions']} instructions; skipped {skipped}")
    return lines


#: Units by key suffix for :func:`describe` (bytes are shown in MiB).
_UNITS = (("_gb", " GB"), ("_hours", " h"), ("hours", " h"), ("_usd", " $"), ("tokens_per_s", " tokens/s"),
          ("_bytes", " bytes"), ("bytes", " bytes"))


def describe(value: Any, prefix: str = "") -> str:
    """A preflight value as ``key value unit`` pairs for people: nested keys dotted, units by key suffix
    (``_gb``, ``hours``, ``_usd``, ``tokens_per_s``, ``bytes`` as MiB), never cut mid-value."""
    if isinstance(value, dict):
        parts = [describe(v, f"{prefix}{k}.") for k, v in sorted(value.items())]
        return "; ".join(p for p in parts if p) or (prefix.rstrip(".") + ": none" if prefix else "none")
    key = prefix.rstrip(".")
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value) or "none"
    elif isinstance(value, bool) or value is None:
        text = {True: "yes", False: "no", None: "none"}[value]
    elif isinstance(value, int | float):
        # the leaf's own unit, else its parent's (dpo_parts_gb.logits is in GB)
        unit = next((u for part in reversed(key.split(".")) for suffix, u in _UNITS if part.endswith(suffix)), "")
        if unit == " bytes":
            text = f"{value / 2**20:.1f} MiB"
        elif unit == " $":
            text = f"${value:.2f}"
        else:
            text = f"{value:.4g}{unit}"
    else:
        text = str(value)
    return f"{key}: {text}" if key else text


def _cost_table(spent: dict[str, Any], projection: Any, price: float) -> list[str]:
    """Spent vs projected (hours, dollars), and the projection's hours per phase."""
    lines = ["| | hours | cost | at |", "|---|---:|---:|---|",
             f"| spent | {spent['hours']:.3f} h | ${spent['cost_usd']:.2f} | ${price}/h |"]
    if isinstance(projection, dict):
        lines.append(f"| projected at preflight | {projection.get('hours', float('nan')):.3f} h | "
                     f"${projection.get('cost_usd', 0.0):.2f} | {projection.get('train_tokens_per_s', 0):g} train / "
                     f"{projection.get('gen_tokens_per_s', 0):g} generation tokens/s, {projection.get('rates', '')} |")
        phases = projection.get("phase_hours") or {}
        if phases:
            lines += ["", "| phase (projected) | hours |", "|---|---:|",
                      *(f"| {k} | {v:.4f} h |" for k, v in phases.items())]
    return lines


def _projection(data: dict[str, Any]) -> Any:
    for c in (data.get("preflight") or {}).get("checks", []):
        if c["check"] == "projected_cost":
            return c["value"]
    return None


def render_html(markdown_text: str, plots: dict[str, str], verdict: str) -> str:
    """A self-contained page: the Markdown (as preformatted sections) and the inline SVG plots."""
    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)

    body = []
    for block in (b.strip("\n") for b in markdown_text.split("\n\n")):
        if not block:
            continue
        if block.startswith("# "):
            body.append(f"<h1>{inline(block[2:])}</h1>")
        elif block.startswith("## "):
            body.append(f"<h2>{inline(block[3:])}</h2>")
        elif block.lstrip().startswith("|"):
            rows = [r for r in block.strip().splitlines() if not set(r.replace("|", "").strip()) <= {"-", ":"}]
            cells = [[inline(c.strip()) for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            body.append(f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table></div>")
        elif all(line.startswith("- ") for line in block.splitlines()):
            items = "".join(f"<li>{inline(line[2:])}</li>" for line in block.splitlines())
            body.append(f"<ul>{items}</ul>")
        else:
            body.append(f"<p>{inline(block).replace(chr(10), '<br>')}</p>")
    figures = "".join(f"<figure><figcaption>{html.escape(k)}</figcaption>{v}</figure>" for k, v in plots.items())
    color = "#137333" if verdict == "GO" else "#b3261e"
    return f"""<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>cleanroom report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
.scroll{{overflow-x:auto}}h1,h2,p,li{{overflow-wrap:anywhere}}table{{border-collapse:collapse;margin:1em 0;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;white-space:nowrap}}
td:last-child{{white-space:normal;overflow-wrap:anywhere;min-width:12em}}
h1{{border-bottom:4px solid {color}}}figure{{margin:1.5em 0}}figcaption{{font-weight:bold}}svg{{max-width:100%;height:auto}}</style>
</head><body>{''.join(body)}<h2>Plots</h2>{figures}</body></html>
"""


def write_report(run: Path, out_dir: Path, spent: dict[str, Any]) -> dict[str, Any]:
    """Write ``report.md`` and ``report.html`` into *out_dir*; return the verdict and reasons."""
    data = collect(run)
    md = render_markdown(data, spent)
    verdict, reasons = go_no_go(data)
    atomic_write_bytes(out_dir / "report.md", md.encode())
    atomic_write_bytes(out_dir / "report.html", render_html(md, render_figures(data, MODELS), verdict).encode())
    return {"verdict": verdict, "reasons": reasons}
