"""The Stage 1 report's figures, as inline SVG: accuracy per instruction type, loss curves, SFT lengths.

matplotlib is imported inside (the Agg backend, no display); the report (:mod:`cleanroom.report`)
places the SVG text into its HTML.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _svg(fig: Any) -> str:
    """*fig* as inline SVG text (from ``<svg``, without the XML prolog)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.find("<svg"):]


def render_figures(data: dict[str, Any], models: Sequence[str]) -> dict[str, str]:
    """The report's figures as SVG text: per-type accuracy, the loss curves, the SFT length histogram."""
    # heavy optional: matplotlib
    import matplotlib

    matplotlib.use("Agg")
    # heavy optional: matplotlib
    import matplotlib.pyplot as plt

    out = {}
    summaries = (data.get("eval") or {}).get("summaries") or {}
    if summaries:
        out["per_type"] = _figure(plt, _per_type_plot(plt, summaries, models))
    curves = [(n, data[n]) for n in ("sft", "dpo") if data.get(n)]
    if curves:
        out["loss"] = _figure(plt, _loss_plot(plt, data, curves))
    hist = ((data.get("sft_data") or {}).get("length_tokens") or {})
    if hist.get("counts"):
        out["lengths"] = _figure(plt, _length_plot(plt, hist))
    return out


def _figure(plt: Any, fig: Any) -> str:
    """*fig* as SVG text, closed afterwards."""
    svg = _svg(fig)
    plt.close(fig)
    return svg


def _per_type_plot(plt: Any, summaries: dict[str, Any], models: Sequence[str]) -> Any:
    """Strict accuracy per instruction type with 95% Wilson intervals, one row of markers per model."""

    # heavy optional: scipy
    from cleanroom.stats import wilson_interval

    types = sorted({t for s in summaries.values() for t in s["per_type"]})
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.32 * len(types))))
    y = np.arange(len(types))
    for k, name in enumerate(m for m in models if m in summaries):
        per = summaries[name]["per_type"]
        est, lo, hi = [], [], []
        for t in types:
            row = per.get(t, {"n": 0, "strict": 0.0})
            if row["n"]:
                iv = wilson_interval(int(round(row["strict"] * row["n"])), row["n"])
                est.append(iv.estimate)
                lo.append(max(0.0, iv.estimate - iv.low))
                hi.append(max(0.0, iv.high - iv.estimate))
            else:
                est.append(np.nan)
                lo.append(0)
                hi.append(0)
        ax.errorbar(est, y + (k - 1) * 0.25, xerr=[lo, hi], fmt="o", capsize=2, label=name, markersize=4)
    n_of = {t: max(s["per_type"].get(t, {}).get("n", 0) for s in summaries.values()) for t in types}
    ax.set_yticks(y, [f"{t} (n={n_of[t]})" for t in types], fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("instruction-level strict accuracy (95% Wilson interval)")
    ax.legend(loc="lower right")
    ax.set_title("Per instruction type: base vs SFT vs DPO")
    return fig


def _loss_plot(plt: Any, data: dict[str, Any], curves: list[tuple[str, Any]]) -> Any:
    """Train (and held-out eval) loss per stage; DPO with the ln 2 line its step-0 loss starts on."""

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.2), squeeze=False)
    for ax, (name, metrics) in zip(axes[0], curves, strict=True):
        ax.plot(metrics.get("loss_steps") or range(1, len(metrics["losses"]) + 1), metrics["losses"], label="train")
        evals = metrics.get("eval_losses") or []
        if evals:  # evaluation runs every save_steps (TrainSpec), the last one at the final step at most
            every = (data["config"].get(name) or {}).get("train", {}).get("save_steps", 1)
            ax.plot([min(every * (i + 1), metrics["steps"]) for i in range(len(evals))], evals, "s--",
                    label="eval (held-out)")
        if name == "dpo" and metrics.get("step0_loss") is not None:
            ax.axhline(np.log(2), ls="--", c="gray", lw=0.8, label="ln 2")
        ax.set_title(f"{name.upper()} loss")
        ax.set_xlabel("step")
        ax.legend()
    return fig


def _length_plot(plt: Any, hist: dict[str, Any]) -> Any:
    """Histogram of SFT example lengths in tokens."""

    fig, ax = plt.subplots(figsize=(5, 3))
    edges = hist["edges"]
    ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", edgecolor="black")
    ax.set_xlabel("SFT example length (tokens, prompt + completion + EOS)")
    ax.set_ylabel("examples")
    return fig
