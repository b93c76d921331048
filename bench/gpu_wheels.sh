#!/usr/bin/env bash
# Fills .whl/ with what bench/gpu_session.sh installs on a lent GPU machine: the packages the
# service and the XTTS benchmark import that the machine's image lacks, at this venv's versions,
# as CPython 3.12 manylinux wheels (the machine has Python 3.12, PyTorch 2.11 and no network).
# About 60 MiB; the tool carries at most 64 MiB with the checkout. Run here, then carry `.whl`
# and `src/sentiric_tts/doors/grpc/_generated` (see /work/.library/device/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qs '^/.whl/' .git/info/exclude || echo /.whl/ >>.git/info/exclude
PACKAGES=(
    annotated-types anyascii av brotli cffi coqpit-config coqui-tts coqui-tts-trainer cryptography
    defusedxml fastapi grpcio grpcio-health-checking grpcio-reflection httpcore2 httptools httpx2
    ko-speech-tools librosa num2words opentelemetry-api orjson protobuf pydantic pydantic-core
    pydantic-settings python-dotenv python-multipart sniffio soundfile soxr starlette truststore
    typing-inspection uvicorn watchfiles websockets wyoming
)
pinned=()
for name in "${PACKAGES[@]}"; do
    pinned+=("$name==$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")")
done
# torchcodec must match the machine's PyTorch (2.11), not ours; coqui-tts only checks it is there.
pinned+=("torchcodec==0.11.0")
platforms=()
for n in 17 24 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 "${platforms[@]}" -d .whl "${pinned[@]}"
du -sh .whl
