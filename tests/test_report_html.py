"""The HTML/Markdown run report: preflight, merge and cost as tables with units; SFT eval loss; real-browser layout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cleanroom.report import describe, render_html, render_markdown

CHECKS = [
    {"check": "gpu_memory", "passed": True, "value": {"device_gb": 80.0, "dpo_estimate_gb": 2.201,
                                                      "dpo_parts_gb": {"logits": 0.6711, "weights": 0.0196}}},
    {"check": "disk_space", "passed": True, "value": {"checkpoints": {"total_bytes": 136314880}, "free_gb": 82.69}},
    {"check": "sentinels", "passed": True, "value": {"checked": 19, "failures": []}},
    {"check": "projected_cost", "passed": True,
     "value": {"cost_usd": 0.0, "hours": 0.176, "gen_tokens_per_s": 4082.4, "train_tokens_per_s": 6123.6,
               "rates": "nominal", "phase_hours": {"sft": 0.0046, "dpo": 0.0031}}},
]


def _data() -> dict:
    return {"run": {"run_id": "tiny-0123456789ab", "config_sha256": "0" * 64}, "provenance": {},
            "config": {"model": {"path": "tiny"}, "budget": {"price_per_hour": 0.0},
                       "sft": {"train": {"save_steps": 3}}},
            "preflight": {"passed": True, "checks": CHECKS},
            "merge": {"merged": True, "max_abs_logit_diff": 3.1e-6, "atol": 1e-4, "probes": 4},
            "sft": {"steps": 6, "losses": [11.93, 11.5, 11.2], "loss_steps": [1, 2, 3], "eval_losses": [11.8, 11.6],
                    "tokens_per_s": 300.0, "seconds": 20.0, "peak_mem_bytes": 2**30, "peak_mem_kind": "rss"}}


def test_describe_gives_units_and_never_cuts_a_value():
    """136314880 bytes = 130.0 MiB; *_gb in GB; hours in h; dollars with two decimals; nested keys dotted."""
    text = describe(CHECKS[1]["value"])
    assert text == "checkpoints.total_bytes: 130.0 MiB; free_gb: 82.69 GB"
    assert "dpo_parts_gb.logits: 0.6711 GB" in describe(CHECKS[0]["value"])
    cost = describe(CHECKS[3]["value"])
    assert "cost_usd: $0.00" in cost and "hours: 0.176 h" in cost and "train_tokens_per_s: 6124 tokens/s" in cost
    assert describe({"checked": 19, "failures": []}) == "checked: 19; failures: none"


def test_report_sections_are_tables_not_json():
    md = render_markdown(_data(), {"hours": 0.01, "cost_usd": 0.0})
    assert "{" not in md.split("## Preflight")[1], "raw JSON left in the report"
    assert "| yes | 3.1e-06 | 0.0001 | 4 |" in md  # merge
    assert "| spent | 0.010 h | $0.00 |" in md and "| sft | 0.0046 h |" in md  # cost
    assert "train loss 11.9300 → 11.2000; eval loss (held-out) 11.8000 → 11.6000" in md


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium/chrome on PATH (apt-get install chromium) to lay the "
                    "report out in a real browser")
@pytest.mark.parametrize("width", [1400, 390])
def test_report_fits_the_window_in_a_real_browser(tmp_path: Path, width: int):
    """Laid out by headless Chromium at 1400 and 390 px: the page never scrolls sideways (wide tables scroll
    inside their own box). A script in the copy writes the page's scroll width into the DOM that --dump-dom prints."""
    page = render_html(render_markdown(_data(), {"hours": 0.01, "cost_usd": 0.0}), {}, "NO-GO")
    probe = ("<script>document.body.setAttribute('data-overflow', String(document.documentElement.scrollWidth - "
             "window.innerWidth))</script></body>")
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", probe))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
                          "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'data-overflow="' in dom, dom[-500:]
    overflow = int(dom.split('data-overflow="')[1].split('"')[0])
    assert overflow <= 0, f"the page is {overflow} px wider than a {width} px window"
