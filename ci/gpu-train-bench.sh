#!/usr/bin/env bash
# Guarded cleanroom training beside plain TRL on one CUDA GPU (issue 21), ~6-7 minutes on an H200:
#     ci/gpu-train-bench.sh OUT_DIR            # 1.5B only
#     BENCH_7B=1 ci/gpu-train-bench.sh OUT_DIR # also random Qwen2.5-7B (about 8 more minutes: model build + 4 runs)
# Random-initialised Qwen2.5 (real shapes and vocabulary), nf4 QLoRA r=64 on all projections, batch 8,
# 20 steps (3 warm-up steps untimed), max_length 2048 (the production profile) on length-varied data.
# Each mode runs in its own process (its own peak memory); a run past its time limit is killed and
# reported, and no new run starts after BENCH_BUDGET_S seconds (default 300; each run is capped at 120 s). Writes OUT_DIR/*.json,
# OUT_DIR/*.log and OUT_DIR/table.md, and prints the table.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: ci/gpu-train-bench.sh OUT_DIR}"
mkdir -p "$out"
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then  # the offline box: the same wheels as ci/gpu.sh
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/cleanroom-site .whl/*.whl
  export PYTHONPATH="/tmp/cleanroom-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
cache="${CLEANROOM_CACHE:-$HOME/.cache/cleanroom}/bench-models"
budget="${BENCH_BUDGET_S:-300}"
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

# Most telling first, so a short budget still gives the headline comparison.
modes=(sft-guarded trl-sft dpo-guarded trl-dpo sft-unguarded sft-guarded-bf16 sft-guarded-padfree trl-sft-padfree)
archs=(qwen2.5-1.5b)
[[ "${BENCH_7B:-0}" == 1 ]] && { archs+=(qwen2.5-7b); budget=$((budget + 420)); }
for arch in "${archs[@]}"; do
  python3 -c "import sys; from pathlib import Path; from cleanroom import fixtures; fixtures.random_qwen25_model(sys.argv[1], Path(sys.argv[2]))" \
    "$arch" "$cache/$arch" > "$out/$arch-build.log" 2>&1 || { echo "$arch: model build failed, see $out/$arch-build.log"; continue; }
  echo "$arch built at $(( $(date +%s) - start ))s"
  for mode in "${modes[@]}"; do
    [[ "$arch" == qwen2.5-7b && "$mode" != sft-guarded && "$mode" != trl-sft && "$mode" != dpo-guarded && "$mode" != trl-dpo ]] && continue
    if (( $(date +%s) - start > budget )); then echo "$arch $mode: skipped (budget ${budget}s spent)"; continue; fi
    t0=$(date +%s)
    timeout 120 python3 benchmarks/bench_train_side_by_side.py --mode "$mode" --model "$cache/$arch" \
      --quantization nf4 --steps 20 --warmup 3 --batch 8 --r 64 --max-length 2048 \
      --out "$out/$arch-$mode.json" > "$out/$arch-$mode.log" 2>&1
    echo "$arch $mode: rc=$? in $(( $(date +%s) - t0 ))s"
  done
done
python3 benchmarks/bench_train_side_by_side.py --table "$out" | tee "$out/table.md"
echo "total $(( $(date +%s) - start ))s"
