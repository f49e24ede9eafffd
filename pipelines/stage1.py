"""Stage 1 of cleanroom, top to bottom: the script to open first.

    python pipelines/stage1.py --profile tiny [--out runs] [--resume] [--stop-after STAGE] [key=value ...]

runs exactly what ``cleanroom run stage1`` runs (same options, same exit codes):

    1. config      the profile YAML (``tiny``, ``smollm2``, ``qwen2.5-32b`` or a path) plus ``key=value``
                   overrides, validated and hashed: the hash names the run directory ``runs/<name>-<hash>/``
    2. provenance  every stage records its inputs, environment, seeds and model digests in its manifest
    3. preflight   every check that can fail cheaply, before anything costly: eval set disjoint from the
                   SFT pool, model pinned and base, token lengths, memory, disk, projected time and cost
    4. stages      baseline → SFT data → SFT → merge proof → preference pairs → DPO → evaluation
    5. report      ``report/report.html`` with the Stage 2 verdict, then the run's attestation

The code each step runs is :mod:`cleanroom.pipeline.stage1` (``STAGES`` and ``run_stage1``, a loop over the
stage functions of :mod:`cleanroom.pipeline`); it ships in the wheel with the profiles and the constitution.
``cleanroom verify runs/<run_id>`` re-checks a finished run from its files alone.
"""

from __future__ import annotations

import sys

from cleanroom.cli import main
from cleanroom.pipeline.stage1 import STAGES, run_stage1

__all__ = ["STAGES", "run_stage1"]

if __name__ == "__main__":
    sys.exit(main(["run", "stage1", *sys.argv[1:]]))
