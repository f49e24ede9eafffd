#!/usr/bin/env bash
# Unsloth on an offline CUDA box (issue 16): its stack pins trl<=1.15 and datasets<5, so it lives in a site
# directory of its own, put *before* the project's wheels on PYTHONPATH (trl 1.15 and datasets 4.3 shadow
# the newer ones for this run only).
#   1. with pip access:   ci/gpu-unsloth.sh --download .whl-unsloth      (45 MB, Python 3.12 wheels)
#   2. on the box, in consecutive transfers while it stays up (each transfer <= 64 MiB):
#        ci/gpu.sh --install                 (carry .whl/:          the project's wheels -> /tmp/cleanroom-site)
#        ci/gpu-unsloth.sh --install         (carry .whl-unsloth/:  Unsloth's stack      -> /tmp/unsloth-site)
#        ci/gpu-unsloth.sh OUT_DIR [all|gate|stage1]
#                                             gate: the gate's checks 1, 3, 4 and 10 (Unsloth beside peft);
#                                             stage1: Stage 1 with backend=unsloth on a random Qwen2.5-0.5B (SFT
#                                             and DPO with Unsloth, DPO from sft/adapter loaded into Unsloth's
#                                             LoRA), then verify; all (default): both, in one transfer (~10 min)
#   A rented box with pip access: tox -e gpu-unsloth (the same pins, checks 1, 3, 4 and 10) instead of steps 1-2;
#   `pip install 'cleanroom[train,unsloth]'` cannot resolve: Unsloth's trl/datasets pins are below `train`'s.
set -uo pipefail
cd "$(dirname "$0")/.."
UNSLOTH=(unsloth==2026.10.9 unsloth_zoo==2026.10.9 trl==1.15.0 datasets==4.3.0 torchao==0.18.0 cut_cross_entropy
         tyro docstring_parser shtab typeguard msgspec hf_transfer diffusers)
if [[ "${1:-}" == "--download" ]]; then
  dest="${2:-.whl-unsloth}"; mkdir -p "$dest"
  exec python3 -m pip download --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$dest" "${UNSLOTH[@]}"
fi
if [[ "${1:-}" == "--install" ]]; then
  exec python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/unsloth-site .whl-unsloth/*.whl
fi
out="${1:?usage: ci/gpu-unsloth.sh --download DIR | --install | OUT_DIR [all|gate|stage1]}"
what="${2:-all}"
mkdir -p "$out/gate"
[[ -d /tmp/unsloth-site && -d /tmp/cleanroom-site ]] || { echo "install both wheel sets first (see the header)"; exit 2; }
export PYTHONPATH="/tmp/unsloth-site:/tmp/cleanroom-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 UNSLOTH_DISABLE_STATISTICS=1
export CLEANROOM_GATE_DIR="$out/gate" CLEANROOM_CACHE="${CLEANROOM_CACHE:-/tmp/cleanroom-cache}"
rc=0
if [[ "$what" == all || "$what" == gate ]]; then
start=$(date +%s)
timeout -s ABRT "${GATE_TIMEOUT_S:-300}" python3 -X faulthandler -m pytest -m gpu -p cleanroom.pytest_plugin \
  -p no:randomly -p no:cacheprovider verification/test_gpu_gate.py -k "test_1_ or test_3_ or test_4_ or test_10_" \
  -q -rs > "$out/gate.log" 2>&1
gate_rc=$?
rc=$gate_rc
echo "gate (checks 1,3,4,10) rc=$gate_rc in $(( $(date +%s) - start ))s: $(grep -E '[0-9]+ (passed|failed)' "$out/gate.log" | tail -1)"
[[ -f "$out/gate/gate-report.md" ]] && grep -E '^\| *(1|3|4|10)' "$out/gate/gate-report.md" | cut -c1-400
fi
[[ "$what" == all || "$what" == stage1 ]] || exit $rc
start=$(date +%s)
timeout -s ABRT "${STAGE1_TIMEOUT_S:-600}" python3 -X faulthandler -m cleanroom.cli run stage1 --profile qwen2.5-32b \
  --out "$out/runs" --no-progress "backend=${BACKEND:-unsloth}" ${GATE_REPORT:+--gate-report "$GATE_REPORT"} \
  model.random_init=qwen2.5-0.5b model.path=random data.teacher=programmatic pairs.rewriter=programmatic \
  data.n_sft=64 data.min_sft_survivors=32 data.n_eval=200 pairs.n_instructions=32 pairs.min_pairs=16 \
  pairs.samples_per_instruction=2 baseline.max_new_tokens=32 sft_generation.max_new_tokens=32 \
  pairs.generation.max_new_tokens=32 eval.generation.max_new_tokens=32 sft.train.max_steps=8 \
  dpo.train.max_steps=4 > "$out/pipeline.log" 2>&1
stage_rc=$?
echo "stage1 backend=${BACKEND:-unsloth} rc=$stage_rc in $(( $(date +%s) - start ))s"
rc=$(( rc || stage_rc ))
grep -E '^\[|continues in a fresh process' "$out/pipeline.log" | tail -30
for run in "$out"/runs/*/; do [[ -d "$run" ]] && { python3 -m cleanroom.cli verify "$run" || rc=1; }; done
exit $rc  # non-zero when the gate, the run or a verify failed
