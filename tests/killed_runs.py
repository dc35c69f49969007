"""`wan-nb train` killed with SIGKILL after a checkpoint, resumed, and compared with an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

WAN_NB = str(Path(sys.executable).parent/'wan-nb')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}  # the same kernels in every run


def losses(out: Path) -> list[float]:
    return [json.loads(l)['loss'] for l in (Path(out)/'events.jsonl').read_text().splitlines()]


def train_args(settings: list[str], *flags: str) -> list[str]:
    return [WAN_NB, 'train', *flags, *(x for s in settings for x in ('--set', s))]


def run_ok(args: list[str]):
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def kill_at(args: list[str], checkpoint: Path):
    "Start `args` and SIGKILL it as soon as `checkpoint` exists."
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 240
    while not checkpoint.is_dir():
        assert proc.poll() is None and time.time() < deadline, 'the run ended before it could be killed'
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_same_final_loras(a: Path, b: Path):
    "The same LoRA files in `a/final` and `b/final`, tensor for tensor."
    files = sorted(p.name for p in (a/'final').glob('*.safetensors'))
    assert files and files == sorted(p.name for p in (b/'final').glob('*.safetensors'))
    for name in files:
        x, y = load_file(a/'final'/name), load_file(b/'final'/name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
