#!/usr/bin/env bash
# Download the wheels benchmarks/bench_gpu.py needs on the GPU machine (Python 3.12, x86_64 Linux, no network)
# into .whl/ (git-ignored), pinned to the versions `make test` uses here. torch stays the machine's own.
#
# Then, on the GPU machine, from the repository root with .whl carried:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/bench_gpu.py --json $OUT/bench_gpu.json
# (the device tool: run(command=<that line>, carry=[".whl"], timeout_s=540)).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PINS=(
  accelerate==1.15.0 annotated-doc==0.0.7 annotated-types==0.8.0 anyio==4.16.0 av==18.1.0
  certifi==2026.10.19.post1 charset-normalizer==3.5.3 click==8.5.1 contourpy==1.3.3 cycler==0.12.1
  diffusers==0.42.1 fastcore==2.2.41 filelock==4.3.1 fonttools==4.68.0 fsspec==2026.9.0 h11==0.16.0
  hf-xet==1.8.0 httpcore2==2.16.2 httpx2==2.16.2 huggingface-hub==2.4.0 idna==3.20 importlib-metadata==9.1.0
  kiwisolver==1.5.1 markdown-it-py==4.3.0 matplotlib==3.11.2 mdurl==0.1.2 numpy==2.4.6 packaging==26.4
  peft==0.21.2 pillow==13.0.0 psutil==7.2.2 pydantic==2.14.4 pydantic-core==2.50.5 pygments==2.21.0
  pyparsing==3.3.3 python-dateutil==2.9.0.post0 pyyaml==6.0.4 regex==2026.11.19 requests==2.34.2 rich==15.0.0
  safetensors==0.8.0 shellingham==1.5.4 six==1.17.0 tokenizers==0.23.3 tqdm==4.70.1 transformers==5.24.0
  truststore==0.10.5 typer==0.29.2 typing-extensions==4.16.0 typing-inspection==0.4.5 urllib3==2.8.0 zipp==4.1.2
)
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${PINS[@]}"
ls .whl | wc -l
