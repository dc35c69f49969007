"""Ctrl-C (SIGINT) and SIGTERM sent to a real `wan-nb train` process: the step under way finishes, a checkpoint of
that step is written, the process exits 130 / 143 and prints the command that continues it, and `--resume latest`
ends bit-identical to an uninterrupted run. The same signal sent to `wan-nb run nbs/jobs/train_lora.ipynb` reaches
the training inside the papermill kernel: it checkpoints, and the job's MLflow run ends KILLED (CPU, tiny model)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from wan_nb.core import repo_root
from wan_nb.train import Trainer, checkpoint_problem, load_run_config

STEPS = 120
WAN_NB = str(Path(sys.executable).parent/'wan-nb')


def settings(model, config, out):
    return [f'model="{model}"', f'dataset="{config}"', f'output_dir="{out}"', 'rank=4', 'learning_rate=1e-3', 'seed=3',
            f'max_train_steps={STEPS}', 'checkpoint_every_n_steps=1000', 'keep_last_n_checkpoints=5']


def steps(events: Path) -> list[int]:
    return [json.loads(l)['step'] for l in events.read_text().splitlines()] if events.is_file() else []


def wait_for_steps(proc, events: Path, n: int, timeout: float = 180):
    "Wait until `events` logs step `n` or later while `proc` runs."
    deadline = time.time() + timeout
    while not (s := steps(events)) or s[-1] < n:
        assert proc.poll() is None, f'the run ended before step {n}: {proc.communicate()[1][-2000:]}'
        assert time.time() < deadline, f'no step {n} after {timeout} s'
        time.sleep(0.02)


def env():
    "This test's environment (its MLflow store included) with one thread: the same kernels in every run."
    return {k: v for k, v in os.environ.items() if k != 'IN_TEST'} | {'OMP_NUM_THREADS': '1'}


def interrupt(args, events: Path, sig: int, after: int):
    "Start `args`, send `sig` once `events` shows `after` steps; its exit code and stderr."
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    wait_for_steps(proc, events, after)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_sigint_and_sigterm_checkpoint_then_resume_equals_uninterrupted(tiny_model_dir, stills_and_clips_dataset, tmp_path):
    config = stills_and_clips_dataset
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference runs here, with the kernels of the OMP_NUM_THREADS=1 processes
    reference = Trainer(load_run_config(overrides=settings(tiny_model_dir, config, tmp_path/'ref')), progress=False)
    try: reference_final = reference.train()
    finally: torch.set_num_threads(threads)

    out = tmp_path/'run'
    args = [WAN_NB, 'train', *(x for s in settings(tiny_model_dir, config, out) for x in ('--set', s)), '--no-track']
    events = out/'events.jsonl'
    code, err = interrupt(args, events, signal.SIGINT, after=3)
    k = steps(events)[-1]
    assert code == 130, err[-2000:]
    assert f'interrupted by SIGINT at step {k}; checkpoint step_{k:06d} written' in err, err[-2000:]
    assert any(l.startswith('to continue: ') and l.endswith('--resume latest') for l in err.splitlines()), err[-2000:]
    assert checkpoint_problem(out/'checkpoints'/f'step_{k:06d}') is None
    assert steps(events) == list(range(1, k + 1)) and not (out/'final').exists() and not (out/'.lock').exists()

    code, err = interrupt(args + ['--resume', 'latest'], events, signal.SIGTERM, after=k + 3)
    m = steps(events)[-1]
    assert code == 143, err[-2000:]
    assert f'interrupted by SIGTERM at step {m}; checkpoint step_{m:06d} written' in err and m > k
    assert checkpoint_problem(out/'checkpoints'/f'step_{m:06d}') is None

    done = subprocess.run(args + ['--resume', 'latest'], capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    logged = [json.loads(l)['loss'] for l in events.read_text().splitlines()]
    assert logged == reference.losses  # nothing lost, nothing repeated
    a, b = load_file(reference_final/'lora.safetensors'), load_file(out/'final'/'lora.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_to_a_job_checkpoints_and_ends_its_run_killed(tiny_model_dir, stills_and_clips_dataset, tmp_path):
    config = stills_and_clips_dataset
    params = dict(model=tiny_model_dir, dataset=config, output_dir=tmp_path/'jobs', rank=4, max_train_steps=100_000,
                  checkpoint_every_n_steps=100_000, validate_every_n_steps=None, sample_prompts=None)
    args = [WAN_NB, 'run', 'nbs/jobs/train_lora.ipynb', '--out-dir', str(tmp_path/'notebooks'),
            *(x for k, v in params.items() for x in ('-p', k, str(v)))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=repo_root())
    deadline = time.time() + 240
    while not (found := list((tmp_path/'jobs').glob('*/events.jsonl'))) or len(steps(found[0])) < 3:
        assert proc.poll() is None, f'the job ended before training: {proc.communicate()}'
        assert time.time() < deadline, 'the job did not train within 240 s'
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-2000:] + err[-2000:]

    run_folder = found[0].parent
    k = steps(found[0])[-1]
    assert checkpoint_problem(run_folder/'checkpoints'/f'step_{k:06d}') is None
    run = MlflowClient().get_run(run_folder.name)  # a tracked job writes into <output_dir>/<run id>
    assert run.info.status == 'KILLED'
    assert f'TrainingInterrupted: interrupted by SIGTERM at step {k}; checkpoint step_{k:06d}' in run.data.tags['wan_nb.error']
    assert run.data.tags['wan_nb.checkpoint'] == f'checkpoints/step_{k:06d}'  # relative to its run folder, outside the repository
    checkpoint = run_folder/'checkpoints'/f'step_{k:06d}'
    assert f'-p resume {checkpoint}' in out

    more = dict(params, max_train_steps=k + 2, resume=str(checkpoint))  # the KILLED job continued as a job
    args = [WAN_NB, 'run', 'nbs/jobs/train_lora.ipynb', '--out-dir', str(tmp_path/'notebooks'),
            *(x for key, v in more.items() for x in ('-p', key, str(v)))]
    done = subprocess.run(args, capture_output=True, text=True, env=env(), cwd=repo_root(), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    resumed = [f for f in (tmp_path/'jobs').glob('*/events.jsonl') if f.parent != run_folder]
    assert steps(resumed[0]) == [k + 1, k + 2]  # it went on from step k
