#!/usr/bin/env bash
# Guarded cleanroom training beside plain TRL on one CUDA GPU (issue 21), about 7-8 minutes on an H200:
#     ci/gpu-train-bench.sh OUT_DIR                  # random Qwen2.5-1.5B, every mode below
#     BENCH_7B=1 ci/gpu-train-bench.sh OUT_DIR       # also random Qwen2.5-7B (the headline modes; ~8 min more)
#     BENCH_SMALL=1 PYTHON=.venv/bin/python ci/gpu-train-bench.sh OUT_DIR   # the tiny model on a CPU, every
#                                                    # mode end to end in a few minutes (a dry run of this script)
# Random-initialised Qwen2.5 (real shapes and vocabulary), nf4 QLoRA r=64 on all projections, batch 8,
# max_length 2048 (the production profile) on length-varied data; SFT 10 steps, DPO 6 steps, the first 2
# untimed. Each mode runs in its own process (its own peak memory), the headline comparisons first; a run
# past BENCH_RUN_S (default 100 s) is killed and reported, and no new run starts once BENCH_BUDGET_S
# (default 380 s) has passed since the start: the table then holds what ran and the log says what was skipped.
# OUT_DIR gets three files (the device returns at most 8): table.md, results.json (every mode's result) and
# logs.txt (the tail of each mode's log); per-mode files stay under BENCH_SCRATCH.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: ci/gpu-train-bench.sh OUT_DIR}"
mkdir -p "$out"
py="${PYTHON:-python3}"
scratch="${BENCH_SCRATCH:-/tmp/cleanroom-train-bench}"
rm -rf "$scratch" && mkdir -p "$scratch"
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1 && [[ -z "${PYTHON:-}" ]]; then  # the offline box: ci/gpu.sh's wheels
  bash ci/gpu.sh --install || exit 2
  export PYTHONPATH="/tmp/cleanroom-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_DISABLE=1
cache="${CLEANROOM_CACHE:-$HOME/.cache/cleanroom}/bench-models"
budget="${BENCH_BUDGET_S:-380}"
per_run="${BENCH_RUN_S:-100}"
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$py" -c "import torch, transformers, trl, peft, bitsandbytes as b; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'bitsandbytes', b.__version__)"

# The headline comparisons first, so a short budget still gives them; then the single levers and the guard's twins.
modes=(trl-sft trl-sft-ids sft-guarded-bf16 sft-guarded trl-dpo dpo-guarded-bf16 dpo-fast sft-fast
       sft-fast-unguarded dpo-guarded dpo-fast-unguarded sft-guarded-padfree dpo-guarded-precompute sft-unguarded)
sizes=(--quantization nf4 --batch 8 --r 64 --max-length 2048)
archs=(qwen2.5-1.5b)
if [[ "${BENCH_SMALL:-0}" == 1 ]]; then
  archs=(tiny)
  sizes=(--quantization nf4 --batch 2 --r 8 --max-length 256 --max-prompt 40 --max-completion 80)
fi
[[ "${BENCH_7B:-0}" == 1 ]] && { archs+=(qwen2.5-7b); budget=$((budget + 480)); }
for arch in "${archs[@]}"; do
  model=tiny
  if [[ "$arch" != tiny ]]; then
    model="$cache/$arch"
    "$py" -c "import sys; from pathlib import Path; from cleanroom import fixtures; fixtures.random_qwen25_model(sys.argv[1], Path(sys.argv[2]))" \
      "$arch" "$model" > "$scratch/$arch-build.log" 2>&1 || { echo "$arch: model build failed:"; tail -20 "$scratch/$arch-build.log"; continue; }
  fi
  echo "$arch ready at $(( $(date +%s) - start ))s"
  for mode in "${modes[@]}"; do
    [[ "$arch" == qwen2.5-7b && "$mode" != trl-sft && "$mode" != sft-fast && "$mode" != trl-dpo && "$mode" != dpo-fast ]] && continue
    if (( $(date +%s) - start > budget )); then echo "$arch $mode: skipped (budget ${budget}s spent)"; continue; fi
    steps=(--steps 10 --warmup 2)
    [[ "$mode" == *dpo* ]] && steps=(--steps 6 --warmup 2)
    [[ "$arch" == tiny ]] && steps=(--steps 3 --warmup 1)
    t0=$(date +%s)
    timeout "$per_run" "$py" benchmarks/bench_train_side_by_side.py --mode "$mode" --model "$model" "${sizes[@]}" \
      "${steps[@]}" --out "$scratch/$arch-$mode.json" > "$scratch/$arch-$mode.log" 2>&1
    rc=$?
    ((rc != 0)) && failed=1
    echo "$arch $mode: rc=$rc in $(( $(date +%s) - t0 ))s$( ((rc == 124)) && echo " (killed after ${per_run}s)")"
    ((rc != 0)) && grep -v -i warn "$scratch/$arch-$mode.log" | tail -4
  done
done
"$py" benchmarks/bench_train_side_by_side.py --table "$scratch" > "$out/table.md" || failed=1
"$py" -c "import json, sys; from pathlib import Path; print(json.dumps([json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob('*.json'))], indent=1))" \
  "$scratch" > "$out/results.json"
for f in "$scratch"/*.log; do echo "=== $(basename "$f")"; grep -v -i "warn" "$f" | tail -30; done > "$out/logs.txt"
cat "$out/table.md"
echo "total $(( $(date +%s) - start ))s"
exit $failed  # non-zero when a mode failed or was killed, or the table could not be made (skipped modes are listed)
