"The `wan-nb` console script builds the tiny model and the demo data, and only what is missing."
import json
import os
import subprocess
import sys
from pathlib import Path

WAN_NB = str(Path(sys.executable).parent/'wan-nb')


def run(*args, **env):
    return subprocess.run([WAN_NB, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def test_demo_builds_into_the_repo_data_folder_once(tmp_path):
    (tmp_path/'pyproject.toml').write_text('[project]\nname = "wan-nb"\n')
    first = run('demo', '--no-train', WAN_NB_ROOT=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert (tmp_path/'data'/'tiny-wan'/'model_index.json').is_file()
    assert len(json.loads((tmp_path/'data'/'demo'/'manifest.json').read_text())['clips']) == 24
    assert first.stdout.count('built now') == 2 and 'shorter than 25 frames at 16 fps' in first.stdout
    again = run('demo', '--no-train', WAN_NB_ROOT=str(tmp_path))
    assert again.returncode == 0 and again.stdout.count('already there') == 2


def test_tiny_model_and_demo_data_commands(tmp_path):
    r = run('tiny-model', str(tmp_path/'wan'), '--seed', '3')
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path/'wan'/'model_index.json').read_text())['_class_name'] == 'WanPipeline'
    r = run('demo-data', str(tmp_path/'demo'))
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'demo'/'dataset.toml').is_file() and '24 H.264 clips' in r.stdout


def test_unknown_command_exits_2_and_lists_commands():
    r = run('no-such-command')
    assert r.returncode == 2 and 'tiny-model' in r.stderr
