"""`wan-nb fit RUN.toml`: the memory table and verdict; exit 0 fits, 1 does not fit (with the change that would),
2 usage; `--json` writes the plan; `wan-nb plan DATASET --run RUN.toml` prints the same table after the plan."""
import json
import os
import subprocess
import sys
from pathlib import Path

WAN_NB = str(Path(sys.executable).parent/'wan-nb')


def wan_nb(*args):
    return subprocess.run([WAN_NB, *map(str, args)], capture_output=True, text=True, env=os.environ, timeout=300)


def run_toml(tmp_path, tiny_model_dir, demo_dir, extra=''):
    p = tmp_path/'run.toml'
    p.write_text(f'model = "{tiny_model_dir}"\ndataset = "{demo_dir/"dataset.toml"}"\nrank = 32\n{extra}')
    return p


def test_a_run_that_fits_exits_0_and_writes_json(tmp_path, tiny_model_dir, demo_dir):
    r = wan_nb('fit', run_toml(tmp_path, tiny_model_dir, demo_dir), '--json', tmp_path/'fit.json')
    assert r.returncode == 0, r.stderr
    assert '**Memory plan**' in r.stdout and '**fits**' in r.stdout and 'peak GiB' in r.stdout
    d = json.loads((tmp_path/'fit.json').read_text())
    assert d['fits'] and d['gpu_memory_gb'] == 24 and d['peak']['peak'] == max(x['peak'] for x in d['rows'])


def test_a_run_that_does_not_fit_exits_1_with_the_change(tmp_path, tiny_model_dir, demo_dir):
    r = wan_nb('fit', run_toml(tmp_path, tiny_model_dir, demo_dir), '--set', 'model=/not/downloaded',
               '--set', 'model_type=wan2.1-t2v-14b')
    assert r.returncode == 1, r.stderr
    assert 'does not fit' in r.stdout and 'Smallest change that fits' in r.stdout and 'blocks_to_swap' in r.stdout


def test_usage_errors_exit_2(tmp_path, tiny_model_dir, demo_dir, capsys):
    "In-process (`main`), so that five refusals cost one import."
    from wan_nb.cli import main
    run = run_toml(tmp_path, tiny_model_dir, demo_dir)
    for args, says in [(['--set', 'model=/not/downloaded'], 'model_type'), (['--gpu-memory', '0'], '--gpu-memory'),
                       (['--set', 'blocks_to_swap=99'], 'blocks_to_swap = 99'), (['--set', 'nope=1'], 'nope')]:
        code, err = main(['fit', str(run), *args]), capsys.readouterr().err
        assert code == 2 and says in err and 'Traceback' not in err, (args, err)
    code, err = main(['fit', str(tmp_path/'missing.toml')]), capsys.readouterr().err
    assert code == 2 and 'missing.toml' in err


def test_plan_with_run_prints_the_memory_table(tmp_path, tiny_model_dir, demo_dir):
    r = wan_nb('plan', demo_dir/'dataset.toml', '--run', run_toml(tmp_path, tiny_model_dir, demo_dir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.index('**Dataset plan**') < r.stdout.index('**Memory plan**')
