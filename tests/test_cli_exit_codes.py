"""One exit-code rule for every `wan-nb` command: 0 done, 2 for a usage error (a bad flag or value, a file or
config that cannot be read), 1 when the work itself failed; the message on stderr names the value and the fix."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wan_nb.cli import main

WAN_NB = str(Path(sys.executable).parent/'wan-nb')


def wan_nb(*args, **env):
    return subprocess.run([WAN_NB, *map(str, args)], capture_output=True, text=True, env={**os.environ, **env},
                          timeout=300)


@pytest.mark.parametrize('args, says', [
    (['no-such-command'], "invalid choice: 'no-such-command'"),
    (['suggest-resolution', '.', '--area', '384'], "'384': write WIDTHxHEIGHT, e.g. 384x208"),
    (['cache', 'd.toml', '--model', 'm', '--batch-size', '0'], "'0': write a whole number >= 1"),
    (['convert', 'a.safetensors', '-o', 'b.safetensors', '--to', 'onnx'], "invalid choice: 'onnx'"),
])
def test_bad_flags_and_values_exit_2_before_any_work(args, says):
    r = wan_nb(*args)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr


def test_files_that_cannot_be_read_exit_2_naming_them(tmp_path):
    r = wan_nb('plan', tmp_path/'nope.toml')
    assert r.returncode == 2 and 'nope.toml: no such config file' in r.stderr, r.stderr
    r = wan_nb('suggest-resolution', tmp_path/'no-clips')
    assert r.returncode == 2 and f"{tmp_path/'no-clips'}: not a folder" in r.stderr, r.stderr
    (tmp_path/'lora.pt').write_bytes(b'\x80\x04not safetensors')
    r = wan_nb('convert', tmp_path/'lora.pt', '-o', tmp_path/'out.safetensors')
    assert r.returncode == 2 and 'lora.pt' in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_run_options_that_cannot_be_used_exit_2(tmp_path, capsys):
    assert main(['train', str(tmp_path/'run.toml'), '--no-track']) == 2
    assert 'run.toml: no such run config' in capsys.readouterr().err
    assert main(['train', '--set', 'learning_rat=1e-4', '--no-track']) == 2
    assert "unknown option(s) ['learning_rat']" in capsys.readouterr().err
    assert main(['train', '--set', 'gradient_checkpointing=maybe', '--no-track']) == 2
    assert 'gradient_checkpointing' in capsys.readouterr().err


def test_a_filter_mlflow_cannot_parse_exits_2(tmp_path, monkeypatch, capsys):
    from wan_nb.tracking import reset_tracking, setup_tracking
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    setup_tracking('wan-nb')
    try: assert main(['runs', '--filter', 'rank = 8']) == 2
    finally: reset_tracking()
    err = capsys.readouterr().err
    assert "--filter 'rank = 8'" in err and "params.rank = '8'" in err, err


def test_a_training_that_stops_exits_1(monkeypatch, capsys):
    import wan_nb.tracking, wan_nb.train
    from wan_nb.train import TrainingError

    class Stops:
        def __init__(self, cfg, callbacks, progress=True): pass
        def train(self, resume=None): raise TrainingError('step 3: the loss is nan; the last good checkpoint is step_2')
    monkeypatch.setattr(wan_nb.train, 'Trainer', Stops)
    monkeypatch.setattr(wan_nb.tracking, 'training_callbacks', lambda cfg, tracking=True, **kw: [])
    assert main(['train', '--set', 'max_train_steps=3']) == 1
    assert capsys.readouterr().err == 'error: step 3: the loss is nan; the last good checkpoint is step_2\n'


def test_help_and_version_exit_0(capsys):
    assert main(['--help']) == 0 and 'suggest-resolution' in capsys.readouterr().out
    assert main(['--version']) == 0 and capsys.readouterr().out.startswith('wan-nb ')
