#!/usr/bin/env bash
# Guarded cleanroom training beside plain TRL on one CUDA GPU (issue 21):
#     ci/gpu-train-bench.sh OUT_DIR                       # random Qwen2.5-1.5B, every mode below (~8 min)
#     BENCH_ARCHS=qwen2.5-7b ci/gpu-train-bench.sh OUT_DIR # random Qwen2.5-7B, the headline modes only
#     BENCH_SMALL=1 PYTHON=.venv/bin/python ci/gpu-train-bench.sh OUT_DIR   # the tiny model on a CPU, every
#                                                    # mode end to end in a few minutes (a dry run of this script)
# Random-initialised Qwen2.5 (real shapes and vocabulary; built once under $CLEANROOM_CACHE/gpu-gate, where the
# GPU gate builds the same models), nf4 QLoRA r=64 on all projections, batch 8, max_length 2048 (the production
# profile) on length-varied data; SFT 24 steps and DPO 14 steps, the first 3 untimed (7B: 12 and 8, first 2);
# BENCH_SFT_STEPS="STEPS WARMUP" and BENCH_DPO_STEPS="STEPS WARMUP" set them for every model (longer runs).
# Without BENCH_MODES the 7B model runs the headline modes only; BENCH_MODES runs what it names at every size.
# Each mode runs in its own process (its own peak memory), the headline comparisons first; a run past
# BENCH_RUN_S (default 100 s) is killed and reported, and no new run starts once BENCH_BUDGET_S (default 480 s)
# has passed since the start: the table then holds what ran and the log says what was skipped.
# The unsloth-* modes run with Unsloth's site directory first on PYTHONPATH (ci/gpu-unsloth.sh --install puts it at
# /tmp/unsloth-site); without it the mode is reported NOT RUN.
# OUT_DIR gets three files (the device returns at most 8): table.md, results.json (every mode's result) and
# logs.txt (the tail of each mode's log); per-mode files stay under BENCH_SCRATCH. Each result records the versions
# it ran with. Exit 0 when every mode asked for ran, 1 when one failed or was killed, 3 when some did not run
# (budget spent, or no Unsloth site).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: ci/gpu-train-bench.sh OUT_DIR}"
mkdir -p "$out"
py="${PYTHON:-python3}"
scratch="${BENCH_SCRATCH:-/tmp/cleanroom-train-bench}"
rm -rf "$scratch" && mkdir -p "$scratch"
if [[ -z "${PYTHON:-}" ]]; then  # the offline box: ci/gpu.sh's wheels, installed now or by an earlier transfer
  if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then bash ci/gpu.sh --install || exit 2; fi
  [[ -d /tmp/cleanroom-site ]] && export PYTHONPATH="/tmp/cleanroom-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_DISABLE=1
cache="${CLEANROOM_CACHE:-$HOME/.cache/cleanroom}/gpu-gate"
budget="${BENCH_BUDGET_S:-480}"
per_run="${BENCH_RUN_S:-100}"
unsloth_site="${UNSLOTH_SITE:-/tmp/unsloth-site}"
start=$(date +%s)
failed=0
incomplete=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$py" -c "import torch, transformers, trl, peft, bitsandbytes as b; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'bitsandbytes', b.__version__)"

# The headline comparisons first, so a short budget still gives them; then the single levers and the guard's twins.
modes=(trl-sft trl-sft-ids sft-guarded sft-guarded-rebalance sft-guarded-ga4 trl-dpo dpo-guarded dpo-guarded-rebalance
       dpo-guarded-ga4 dpo-guarded-precompute unsloth-sft unsloth-sft-bucket unsloth-sft-padfree unsloth-dpo unsloth-dpo-bucket unsloth-dpo-fused
       sft-guarded-rebalance-ga1
       dpo-guarded-rebalance-ga1 sft-guarded-upcast sft-unguarded dpo-unguarded sft-guarded-padfree sft-guarded-bucket
       dpo-guarded-upcast trl-sft-padfree sft-guarded-fused sft-guarded-padfree-fused sft-guarded-grouped dpo-guarded-grouped
       unsloth-sft-grouped unsloth-dpo-grouped dpo-guarded-padfree unsloth-dpo-padfree unsloth-dpo-padfree-precompute)
[[ -n "${BENCH_MODES:-}" ]] && read -r -a modes <<< "$BENCH_MODES"  # a subset, in this order
headline=" trl-sft sft-guarded sft-guarded-rebalance sft-guarded-ga4 trl-dpo dpo-guarded dpo-guarded-rebalance dpo-guarded-ga4 dpo-guarded-precompute unsloth-sft unsloth-sft-bucket unsloth-sft-padfree unsloth-dpo unsloth-dpo-bucket "
sizes=(--quantization nf4 --batch 8 --r 64 --max-length 2048)
read -r -a archs <<< "${BENCH_ARCHS:-qwen2.5-1.5b}"
if [[ "${BENCH_SMALL:-0}" == 1 ]]; then
  archs=(tiny)
  sizes=(--quantization nf4 --batch 4 --r 8 --max-length 256 --max-prompt 40 --max-completion 80)
fi
for arch in "${archs[@]}"; do
  model=tiny
  if [[ "$arch" != tiny ]]; then
    model="$cache/$arch"
    "$py" -c "import sys; from pathlib import Path; from cleanroom import fixtures; fixtures.random_qwen25_model(sys.argv[1], Path(sys.argv[2]))" \
      "$arch" "$model" > "$scratch/$arch-build.log" 2>&1 || { echo "$arch: model build failed:"; tail -20 "$scratch/$arch-build.log"; failed=1; continue; }
  fi
  echo "$arch ready at $(( $(date +%s) - start ))s"
  for mode in "${modes[@]}"; do
    [[ -z "${BENCH_MODES:-}" && "$arch" == qwen2.5-7b && "$headline" != *" $mode "* ]] && continue
    if (( $(date +%s) - start > budget )); then echo "$arch $mode: skipped (budget ${budget}s spent)"; incomplete=1; continue; fi
    steps=(--steps 24 --warmup 3)
    [[ "$mode" == *dpo* ]] && steps=(--steps 14 --warmup 3)
    if [[ "$arch" == qwen2.5-7b ]]; then
      steps=(--steps 12 --warmup 2); [[ "$mode" == *dpo* ]] && steps=(--steps 8 --warmup 2)
    fi
    [[ "$arch" == tiny ]] && steps=(--steps 3 --warmup 1)
    override="${BENCH_SFT_STEPS:-}"; [[ "$mode" == *dpo* ]] && override="${BENCH_DPO_STEPS:-}"
    if [[ -n "$override" ]]; then read -r n w <<< "$override"; steps=(--steps "$n" --warmup "$w"); fi
    env_path="$PYTHONPATH"
    if [[ "$mode" == unsloth-* ]]; then
      if [[ ! -d "$unsloth_site" ]]; then echo "$arch $mode: NOT RUN (no Unsloth site at $unsloth_site)"; incomplete=1; continue; fi
      env_path="$unsloth_site:$PYTHONPATH"  # Unsloth's trl/datasets pins shadow the newer ones for this mode only
    fi
    limit=$per_run
    [[ "$arch" == qwen2.5-7b ]] && limit=$(( per_run * 17 / 10 ))  # loading and quantizing 15 GB of bf16 weights
    t0=$(date +%s)
    PYTHONPATH="$env_path" UNSLOTH_DISABLE_STATISTICS=1 timeout "$limit" "$py" benchmarks/bench_train_side_by_side.py \
      --mode "$mode" --model "$model" "${sizes[@]}" "${steps[@]}" --out "$scratch/$arch-$mode.json" > "$scratch/$arch-$mode.log" 2>&1
    rc=$?
    ((rc != 0)) && failed=1
    echo "$arch $mode: rc=$rc in $(( $(date +%s) - t0 ))s$( ((rc == 124)) && echo " (killed after ${limit}s)")"
    ((rc != 0)) && grep -v -i warn "$scratch/$arch-$mode.log" | tail -4
  done
done
"$py" benchmarks/bench_train_side_by_side.py --table "$scratch" > "$out/table.md" || failed=1
"$py" -c "import json, sys; from pathlib import Path; print(json.dumps([json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob('*.json'))], indent=1))" \
  "$scratch" > "$out/results.json"
for f in "$scratch"/*.log; do echo "=== $(basename "$f")"; grep -v -i "warn" "$f" | tail -30; done > "$out/logs.txt"
cat "$out/table.md"
echo "total $(( $(date +%s) - start ))s"
((failed)) && exit 1  # a mode failed or was killed, or the table could not be made
((incomplete)) && { echo "incomplete: some modes did not run (listed above)"; exit 3; }
exit 0
