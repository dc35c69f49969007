#!/usr/bin/env bash
# Download the wheels benchmarks/bench_gpu.py needs on the GPU machine (Python 3.12, x86_64 Linux, no network)
# into .whl/ (git-ignored), pinned to the versions `make test` uses here. torch stays the machine's own.
#
# These are what bench_gpu.py imports (checked: `bench_gpu.py --tiny` runs on a Python with torch and only these):
# about 51 MiB, under the device tool's 64 MiB carry limit. PyAV is not among them: wan_nb.media imports it only
# in the functions that decode media.
#
# Then, on the GPU machine, from the repository root with .whl carried:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/bench_gpu.py --json $OUT/bench_gpu.json
# (the device tool: run(command=<that line>, carry=[".whl"], timeout_s=540). The benchmark starts no case after
# --budget-s 420 s and prints its JSON even when cases fail; `--tiny` there is a 20 s smoke test.)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PINS=(
  accelerate==1.15.0 anyio==4.16.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3 diffusers==0.42.1
  fastcore==2.2.41 filelock==4.3.1 fsspec==2026.9.0 h11==0.16.0 httpcore2==2.16.2 httpx2==2.16.2
  huggingface-hub==2.4.0 idna==3.20 numpy==2.4.6 packaging==26.4 peft==0.21.2 pillow==13.0.0 psutil==7.2.2
  pyyaml==6.0.4 regex==2026.11.19 requests==2.34.2 safetensors==0.8.0 tokenizers==0.23.3 tqdm==4.70.1
  transformers==5.24.0 truststore==0.10.5 typing-extensions==4.16.0 urllib3==2.8.0
)
rm -rf .whl && mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${PINS[@]}" 2> >(grep -v 'is ignored: it is neither' >&2)
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1)"
