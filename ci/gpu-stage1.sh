#!/usr/bin/env bash
# Every Stage 1 stage on a CUDA box, with the production profile (qwen2.5-32b: nf4 QLoRA, r=64,
# seed 3407) on a random-initialised Qwen2.5 architecture (no weights needed), after the GPU gate:
#     ci/gpu-stage1.sh [OUT_DIR] [ARCH]      # defaults: ./gpu-stage1  qwen2.5-0.5b
# Runs ci/gpu.sh first (same wheels, same PYTHONPATH) and feeds its gate-report.json to the
# pipeline's cost projection (budget.gate_report), then verifies the run. Small sizes keep it to a
# few minutes; drop the overrides to run the profile's full sizes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-stage1}"
arch="${2:-qwen2.5-0.5b}"
mkdir -p "$out/gate"
start=$(date +%s)
CLEANROOM_GATE_DIR="$out/gate" bash ci/gpu.sh > "$out/gate.log" 2>&1
echo "gpu gate rc=$? in $(( $(date +%s) - start ))s: $(grep -E '[0-9]+ (passed|failed)' "$out/gate.log" | tail -1)"
export PYTHONPATH="/tmp/cleanroom-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
gate=()
[[ -f "$out/gate/gate-report.json" ]] && gate=("budget.gate_report=$out/gate/gate-report.json")
start=$(date +%s)
python3 -m cleanroom.cli run stage1 --profile qwen2.5-32b --out "$out/runs" --no-progress \
  model.random_init="$arch" model.path=random data.teacher=programmatic pairs.rewriter=programmatic \
  data.n_sft=64 data.min_sft_survivors=32 data.n_eval=200 pairs.n_instructions=32 pairs.min_pairs=16 \
  pairs.samples_per_instruction=2 baseline.max_new_tokens=32 sft_generation.max_new_tokens=32 \
  pairs.generation.max_new_tokens=32 eval.generation.max_new_tokens=32 sft.train.max_steps=8 \
  dpo.train.max_steps=4 "${gate[@]}" > "$out/pipeline.log" 2>&1
rc=$?
echo "pipeline rc=$rc in $(( $(date +%s) - start ))s"
grep -E '^\[' "$out/pipeline.log" | tail -25
verified=0
for run in "$out"/runs/*/; do
  [[ -d "$run" ]] || continue
  verified=1
  python3 -m cleanroom.cli verify "$run" || rc=1  # BROKEN or PARTIAL fails the script too
done
((verified)) || { echo "no run directory under $out/runs to verify"; rc=1; }
exit $rc  # non-zero when the pipeline failed, a verify did not say ok, or there was no run to verify
