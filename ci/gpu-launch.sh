#!/usr/bin/env bash
# Data-parallel training under accelerate launch on a CUDA box (issue #20): the launcher must not change training.
#     ci/gpu-launch.sh [OUT_DIR]            # default ./gpu-launch
# What it runs (the same wheels and PYTHONPATH as ci/gpu.sh, whose offline set-up it reuses when .whl/ exists):
#   1. pytest -m gpu verification/test_gpu_data_parallel.py with --cleanroom-require-gpu:
#      - one rank under `accelerate launch --num_processes 1` against a plain `python -m` process on the random
#        Qwen2.5-1.5B (fp32 LoRA SFT 4 steps then DPO 2 steps, cleanroom.training.ddp_check): losses within 1e-4
#        relative, adapters within 1e-4 (the no-regression check of the issue's "On one H200");
#      - gate check 11, two ranks against one process: NOT RUN (recorded as skipped) with fewer than 2 visible
#        GPUs. CLEANROOM_GATE_GPUS=2 makes it required, so on a 1-GPU box the gate says NO-GO, naming it.
#   2. the CPU proof on this box too, GPUs hidden (two gloo ranks vs one process; a killed rank resumes):
#      tests/training/test_ddp_launch.py.
# gate-report.json/md (check 11 and its figures) land in OUT_DIR/gate.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-launch}"
mkdir -p "$out/gate"
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
  bash ci/gpu.sh --install || exit 2
  export PYTHONPATH="/tmp/cleanroom-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export CLEANROOM_GATE_DIR="$out/gate" CLEANROOM_CACHE="${CLEANROOM_CACHE:-$HOME/.cache/cleanroom}"
plugin=()
python3 -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'cleanroom' for e in m.entry_points(group='pytest11')) else 1)" \
  || plugin=(-p cleanroom.pytest_plugin)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
start=$(date +%s)
python3 -m pytest -m gpu --cleanroom-require-gpu "${plugin[@]}" -p no:randomly -p no:cacheprovider -rs -v \
  verification/test_gpu_data_parallel.py 2>&1 | tee "$out/gpu.log" | tail -15
rc_gpu=${PIPESTATUS[0]}
echo "gpu data-parallel checks rc=$rc_gpu in $(( $(date +%s) - start ))s (report: $out/gate/gate-report.md)"
start=$(date +%s)
CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 python3 -m pytest "${plugin[@]}" -p no:randomly -p no:cacheprovider -q tests/training/test_ddp_launch.py \
  2>&1 | tee "$out/cpu.log" | tail -3
rc_cpu=${PIPESTATUS[0]}
echo "cpu proof rc=$rc_cpu in $(( $(date +%s) - start ))s"
exit $(( rc_gpu != 0 || rc_cpu != 0 ))
