"environment.yml (conda) and pyproject.toml describe the same environment."
import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_installs_this_package_with_every_extra():
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    project = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    conda = [d for d in env['dependencies'] if isinstance(d, str)]
    pip = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith('python'))
    assert python == 'python=3.11' and '3.11' in SpecifierSet(project['requires-python'])
    extras = set(project['optional-dependencies'])
    installs = [re.fullmatch(r'-e \.\[(.*)\]|\.\[(.*)\]', p) for p in pip]
    assert any(installs), f'environment.yml must pip-install this package (-e .[{",".join(sorted(extras))}])'
    named = {e for m in installs if m for e in (m.group(1) or m.group(2)).split(',')}
    assert named == extras, f'environment.yml installs extras {named}, pyproject.toml defines {extras}'


def test_conda_env_adds_no_package_pyproject_does_not_know():
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    project = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    deps = project['dependencies'] + [d for ds in project['optional-dependencies'].values() for d in ds]
    known = {re.split(r'[<>=!~\[ ]', d)[0].lower() for d in deps}
    conda = {re.split(r'[<>=!~ ]', d)[0].lower() for d in env['dependencies'] if isinstance(d, str)}
    assert conda - {'python', 'pip'} <= known, f'conda-only packages: {conda - {"python", "pip"} - known}'
