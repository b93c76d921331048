#!/usr/bin/env bash
# The XTTS checks for a lent GPU machine, in one run of about 8 minutes: what it prints and the
# JSON it writes under $OUT are the figures of docs/benchmarks.md's GPU section.
#
# That machine has PyTorch but not our other packages, and no network: carry them as wheels in
# .whl/ (bench/gpu_wheels.sh fills it, Python 3.12); this installs them first.
# Steps: import check, the full-size random checkpoint, then bench/bench_xtts.py through the
# engine (every dtype, CUDA graphs on and off, 1-32 callers, greedy-token agreement) and through
# the HTTP service (the first dtype). Each step has its own time limit, so a slow one leaves the
# others their figures.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
python3 -c "import sentiric_tts.app, sentiric_tts.engines.xtts" || exit 1
CHECKPOINT=/tmp/xtts-full
SECONDS=0
python3 -c "from pathlib import Path; from tests.support.random_xtts import build_random_xtts as b; b(Path('$CHECKPOINT'), preset='full')" || exit 1
echo "checkpoint built in ${SECONDS} s"

bench() {  # name, time limit (s), then bench_xtts.py's options
    local name=$1 limit=$2
    shift 2
    timeout "$limit" python3 bench/bench_xtts.py --device cuda --checkpoint "$CHECKPOINT" \
        --json "$OUT/$name.json" "$@" 2>&1 | grep -v '^\[transformers\]' | tee "$OUT/$name.log"
}
bench engine "${ENGINE_LIMIT_S:-330}" --dtypes float32,float16,bfloat16 --graphs on,off \
    --concurrency 1,4,16,32 --rounds 2 --stream-vs-whole 240
bench http "${HTTP_LIMIT_S:-90}" --http-only --http-dtype "${HTTP_DTYPE:-float16}" --concurrency 1,4,16 --rounds 2
