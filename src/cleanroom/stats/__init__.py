"""Statistics that decide: intervals, paired tests, effect sizes, power and verdicts.

Pure functions over numpy arrays (no torch, no printing, no global RNG); typed results.
"""

from __future__ import annotations

from cleanroom.stats.compare import ComparisonRow, compare_verdict_files, format_markdown, read_verdict_file
from cleanroom.stats.intervals import (
    Interval,
    bca_interval,
    clopper_pearson_interval,
    clustered_mean_interval,
    t_interval,
    wilson_interval,
)
from cleanroom.stats.paired import (
    BootstrapResult,
    PairedAccuracy,
    PairedBinaryResult,
    PairedGradedResult,
    cohens_h,
    compare_paired_binary,
    compare_paired_graded,
    holm,
    midp_mcnemar,
    paired_bootstrap,
    paired_graded_pvalues,
)
from cleanroom.stats.power import (
    mde_from_se,
    mde_paired_binary,
    mde_paired_mean,
    power_paired_binary,
    required_n_paired_binary,
    required_n_paired_mean,
)
from cleanroom.stats.verdict import DEFAULT_MIN_N, require_min_n, verdict_for

__all__ = [
    "DEFAULT_MIN_N",
    "BootstrapResult",
    "ComparisonRow",
    "Interval",
    "PairedAccuracy",
    "PairedBinaryResult",
    "PairedGradedResult",
    "bca_interval",
    "clopper_pearson_interval",
    "clustered_mean_interval",
    "cohens_h",
    "compare_paired_binary",
    "compare_paired_graded",
    "compare_verdict_files",
    "format_markdown",
    "holm",
    "mde_from_se",
    "mde_paired_binary",
    "mde_paired_mean",
    "midp_mcnemar",
    "paired_bootstrap",
    "paired_graded_pvalues",
    "power_paired_binary",
    "read_verdict_file",
    "require_min_n",
    "required_n_paired_binary",
    "required_n_paired_mean",
    "t_interval",
    "verdict_for",
    "wilson_interval",
]
