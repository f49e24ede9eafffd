"""report.go_no_go fails closed: every input of the Stage 2 verdict is required, and a missing one is named."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from cleanroom.report import VERDICT_INPUTS, collect, go_no_go


def _row(a: str, b: str, verdict: str, difference: float) -> dict:
    return {"a": a, "b": b, "verdict": verdict, "difference": difference, "p_holm": 0.01, "mde": 0.05}


GOOD = {
    "preflight": {"passed": True, "checks": []},
    "merge": {"merged": True, "max_abs_logit_diff": 1e-5, "atol": 1e-3, "probes": 4},
    "dpo": {"step0_loss": math.log(2), "losses": [0.69]},
    "eval": {"primary": "prompt_strict", "comparisons": {"prompt_strict": [
        _row("base", "sft", "improved", 0.12), _row("base", "dpo", "improved", 0.15), _row("sft", "dpo", "none", 0.03),
    ]}},
}


def _without(key: str):
    return lambda d: d.pop(key)


def _set(key: str, field: str, value):
    def edit(d):
        if value is _DROP:
            d[key].pop(field)
        else:
            d[key][field] = value
    return edit


_DROP = object()

# (edit of a GO run, the text the one NO-GO reason must contain)
CASES = {
    "preflight missing": (_without("preflight"), "preflight/results.json is missing"),
    "merge missing": (_without("merge"), "merge/equivalence.json is missing"),
    "dpo missing": (_without("dpo"), "dpo/metrics.json is missing"),
    "eval missing": (_without("eval"), "eval/comparison.json is missing"),
    "dpo unreadable": (lambda d: (d.pop("dpo"), d.update(unreadable={"dpo": "JSONDecodeError: line 1"})),
                       "dpo/metrics.json is unreadable"),
    "dpo not an object": (lambda d: d.update(dpo=[1, 2]), "dpo/metrics.json is not a JSON object"),
    "preflight failed": (_set("preflight", "passed", False), "preflight did not pass"),
    "preflight without passed": (_set("preflight", "passed", _DROP), "records no `passed`"),
    "dpo step 0 did not run": (_set("dpo", "step0_loss", None), "DPO step-0 check did not run"),
    "dpo step 0 absent": (_set("dpo", "step0_loss", _DROP), "DPO step-0 check did not run"),
    "merge disagrees": (_set("merge", "max_abs_logit_diff", 0.5), "logits disagree"),
    "merge diff absent": (_set("merge", "max_abs_logit_diff", _DROP), "merge equivalence did not run"),
    "merge says nothing": (_set("merge", "merged", _DROP), "neither merged=true"),
    "merge skipped without reason": (_set("merge", "merged", False), "neither merged=true"),
    "no comparison rows": (_set("eval", "comparisons", {}), "no evaluation comparison"),
    "no improvement": (lambda d: d["eval"]["comparisons"].update(prompt_strict=[
        _row("base", "sft", "none", 0.01), _row("base", "dpo", "none", 0.02)]), "neither SFT nor DPO improved"),
}


def test_a_complete_improving_run_is_go() -> None:
    assert go_no_go(copy.deepcopy(GOOD)) == ("GO", [])


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_missing_or_failed_input_is_no_go_naming_it(case: str) -> None:
    edit, text = CASES[case]
    data = copy.deepcopy(GOOD)
    edit(data)
    decision, reasons = go_no_go(data)
    assert decision == "NO-GO"
    assert len(reasons) == 1 and text in reasons[0], reasons


def test_an_empty_run_names_every_input() -> None:
    decision, reasons = go_no_go({})
    assert decision == "NO-GO"
    assert [r.split(" ", 1)[0] for r in reasons] == list(VERDICT_INPUTS.values())


def test_collect_reads_an_unreadable_file_as_a_reason_not_as_absent(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for key, name in VERDICT_INPUTS.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(json.dumps(GOOD[key]))
    (run / "run.json").write_text(json.dumps({"run_id": "r", "config_sha256": "0" * 64}))
    (run / "config.resolved.yaml").write_text("seed: 0\n")
    assert go_no_go(collect(run)) == ("GO", [])
    (run / "merge" / "equivalence.json").write_bytes(b'{"merged": tru')
    decision, reasons = go_no_go(collect(run))
    assert decision == "NO-GO" and len(reasons) == 1 and reasons[0].startswith("merge/equivalence.json is unreadable")
