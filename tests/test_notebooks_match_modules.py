"CI fails when a notebook and its exported module disagree, or a notebook is not clean."
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT/'tools'/'check_nbdev_sync.py'


def copy_checkout(dst: Path) -> Path:
    shutil.copy(ROOT/'pyproject.toml', dst)
    for sub in ('nbs', 'wan_nb'):
        shutil.copytree(ROOT/sub, dst/sub, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    return dst


def check(root: Path):
    return subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True, text=True)


def test_this_checkout_is_in_sync():
    r = check(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_hand_edited_module_fails_and_is_named(tmp_path):
    root = copy_checkout(tmp_path)
    with open(root/'wan_nb'/'models.py', 'a') as f: f.write('\nHAND_EDIT = 1\n')
    r = check(root)
    assert r.returncode == 1 and 'wan_nb/models.py' in r.stdout and 'edit the notebook' in r.stdout


def test_a_notebook_edited_without_export_fails(tmp_path):
    root = copy_checkout(tmp_path)
    nb_path = root/'nbs'/'00_core.ipynb'
    nb = json.loads(nb_path.read_text())
    cell = next(c for c in nb['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).startswith('#| export\ndef temp_sibling'))
    cell['source'] = ''.join(cell['source']).replace('A hidden, unique name', 'A hidden unique name')
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    r = check(root)
    assert r.returncode == 1 and 'wan_nb/core.py' in r.stdout


def test_an_uncleaned_notebook_fails(tmp_path):
    root = copy_checkout(tmp_path)
    nb_path = root/'nbs'/'00_core.ipynb'
    nb = json.loads(nb_path.read_text())
    nb['cells'][1]['execution_count'] = 7
    nb['cells'][1]['metadata']['collapsed'] = True
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    r = check(root)
    assert r.returncode == 1 and 'nbs/00_core.ipynb' in r.stdout
