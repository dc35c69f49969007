"""Fail if `nbdev-clean` or `nbdev-export` would change a file of this checkout.

Both commands run on a copy of pyproject.toml, nbs/ and wan_nb/, so the working tree is never touched; every
file they would change, add or remove is listed. `make test` runs this before the tests.
Usage: python tools/check_nbdev_sync.py [REPO_ROOT]
"""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

CHECKED = ('nbs', 'wan_nb')
IGNORED = shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints')


def files(root: Path) -> set[str]:
    "Paths (relative to `root`) of the files under the checked folders."
    return {str(p.relative_to(root)) for d in CHECKED for p in (root/d).rglob('*')
            if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts}


def changed_files(root: Path) -> list[str]:
    "Files that nbdev-clean followed by nbdev-export would change, add or remove under `root`."
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d)
        shutil.copy(root/'pyproject.toml', copy)
        for sub in CHECKED: shutil.copytree(root/sub, copy/sub, ignore=IGNORED)
        for cmd in ('nbdev-clean', 'nbdev-export'):
            subprocess.run([str(bin_dir/cmd)], cwd=copy, check=True, capture_output=True)
        before, after = files(root), files(copy)
        changed = [f for f in sorted(before & after) if not filecmp.cmp(root/f, copy/f, shallow=False)]
        return changed + [f'{f} (would be created)' for f in sorted(after - before)] \
                       + [f'{f} (would be removed)' for f in sorted(before - after)]


if __name__ == '__main__':
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    changed = changed_files(root)
    if changed:
        print('Notebooks and the exported package disagree; nbdev-clean/nbdev-export would change:')
        print('\n'.join(f'  {f}' for f in changed))
        print('Fix: edit the notebook in nbs/ (never wan_nb/*.py by hand), run `nbdev-clean && nbdev-export`, commit both.')
        sys.exit(1)
    print('nbdev-clean and nbdev-export change nothing: notebooks and wan_nb/ agree.')
