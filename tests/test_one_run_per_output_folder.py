"""Two runs in one output folder would interleave checkpoints and events.jsonl: while a real `wan-nb train` process
trains, a second run in its folder stops at once naming the first one's pid and host, and writes nothing there;
after the first is killed with SIGKILL (its lock left behind), the next run takes the lock over with a warning
naming the dead pid, trains, and releases it (CPU, tiny model)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wan_nb.cli import main



def test_second_run_is_refused_and_a_killed_runs_lock_is_taken_over(tiny_model_dir, images_dataset, tmp_path, capsys):
    config, out = images_dataset, tmp_path/'run'
    sets = lambda steps: [x for s in [f'model="{tiny_model_dir}"', f'dataset="{config}"', f'output_dir="{out}"',
                                      'rank=4', f'max_train_steps={steps}'] for x in ('--set', s)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    first = subprocess.Popen([str(Path(sys.executable).parent/'wan-nb'), 'train', *sets(100_000), '--no-track'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    events, deadline = out/'events.jsonl', time.time() + 180
    while not (events.is_file() and events.read_text().count('\n') >= 2):  # the first run trains
        assert first.poll() is None and time.time() < deadline, 'the first run did not start training'
        time.sleep(0.05)
    lock = json.loads((out/'.lock').read_text())
    assert (lock['pid'], lock['host']) == (first.pid, socket.gethostname())

    t0 = time.time()
    assert main(['train', *sets(3), '--no-track']) == 1  # the second run, in this process
    refused_in = time.time() - t0
    err = capsys.readouterr().err
    assert f'another training run uses this folder: process {first.pid} on {socket.gethostname()}' in err, err
    assert refused_in < 5, f'refused only after {refused_in:.1f} s'
    steps = [json.loads(l)['step'] for l in events.read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))  # the first run's log, untouched by the second
    assert first.poll() is None  # and the first run goes on

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert json.loads((out/'.lock').read_text())['pid'] == first.pid  # SIGKILL left the lock
    with pytest.warns(UserWarning, match=f'process {first.pid} on .* is gone without releasing its lock'):
        assert main(['train', *sets(3), '--no-track']) == 0
    assert not (out/'.lock').exists() and (out/'final'/'lora.safetensors').is_file()
