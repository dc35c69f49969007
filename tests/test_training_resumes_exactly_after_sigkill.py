"""A training process killed with SIGKILL after a checkpoint and resumed ends with LoRA weights bit-identical to an
uninterrupted run, and logs the same per-step losses from the resume point (CPU, tiny model)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file


STEPS, EVERY = 200, 20


def settings(model, config, out):
    return [f'model="{model}"', f'dataset="{config}"', f'output_dir="{out}"', 'rank=4', 'learning_rate=1e-3', 'seed=7',
            f'max_train_steps={STEPS}', f'checkpoint_every_n_steps={EVERY}', 'keep_last_n_checkpoints=2']


def losses(out):
    return [json.loads(l)['loss'] for l in (Path(out)/'events.jsonl').read_text().splitlines()]


def test_sigkill_then_resume_equals_uninterrupted(tiny_model_dir, stills_and_clips_dataset, tmp_path):
    config = stills_and_clips_dataset
    wan_nb = str(Path(sys.executable).parent/'wan-nb')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}  # the same kernels in every run
    train = lambda out: [wan_nb, 'train', *(x for s in settings(tiny_model_dir, config, tmp_path/out) for x in ('--set', s))]
    uninterrupted = subprocess.run(train('reference'), capture_output=True, text=True, env=env, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    args = train('killed')
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    first = tmp_path/'killed'/'checkpoints'/f'step_{EVERY:06d}'
    deadline = time.time() + 240
    while not first.is_dir():
        assert proc.poll() is None and time.time() < deadline, 'the run ended before it could be killed'
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(losses(tmp_path/'killed'))
    assert EVERY <= killed_at < STEPS and not (tmp_path/'killed'/'final').exists()

    resumed = subprocess.run(args + ['--resume', 'latest'], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert losses(tmp_path/'killed') == losses(tmp_path/'reference')  # the log reads as if nothing had happened
    a, b = load_file(tmp_path/'reference'/'final'/'lora.safetensors'), load_file(tmp_path/'killed'/'final'/'lora.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
