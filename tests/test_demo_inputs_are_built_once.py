"The demo inputs are built once, by one of several jobs started together; later calls change nothing."
import json
import shutil
import subprocess
import sys
import tomllib

from wan_nb.demo_data import DEMO_PROMPT, demo_inputs


def test_only_missing_inputs_are_built_and_nothing_is_rewritten(tmp_path, tiny_model_dir, demo_dir):
    (tmp_path/'tiny-wan').symlink_to(tiny_model_dir)
    shutil.copytree(demo_dir, tmp_path/'demo')  # a copy: the session's demo folder stays as it is
    first = demo_inputs(tmp_path)
    assert first.built == ('dataset_val', 'prompts')
    assert (first.model, first.dataset) == (tmp_path/'tiny-wan', tmp_path/'demo'/'dataset.toml')
    val, train = (tomllib.loads(p.read_text()) for p in (first.dataset_val, first.dataset))
    assert val['general'] == {**train['general'], 'validation_split': 0.25}
    assert val['datasets'] == train['datasets']
    assert first.prompts.read_text() == DEMO_PROMPT + '\n'
    stamps = {p: p.stat().st_mtime_ns for p in (first.dataset_val, first.prompts)}
    again = demo_inputs(tmp_path)
    assert again.built == () and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    first.dataset_val.write_text('stale\n')  # an older or edited validation config is brought back in line
    assert demo_inputs(tmp_path).built == ('dataset_val',)
    assert tomllib.loads(first.dataset_val.read_text())['general']['validation_split'] == 0.25


def test_jobs_started_together_build_the_dataset_once(tmp_path, tiny_model_dir):
    (tmp_path/'tiny-wan').symlink_to(tiny_model_dir)
    code = ("import json, sys; from wan_nb.demo_data import demo_inputs; "
            "print(json.dumps(demo_inputs(sys.argv[1]).built))")
    procs = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    built = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(b.count('dataset') for b in built) == [0, 0, 1]
    assert sum(b.count('dataset_val') for b in built) == 1
    assert json.loads((tmp_path/'demo'/'manifest.json').read_text())['seed'] == 0
