"Papermill jobs own their MLflow run: FINISHED, FAILED on a failing cell or a dead kernel, sweeps, bit-identical reruns."
import json
import shutil
import uuid

import nbformat
import pytest
import torch
import mlflow
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook
from safetensors import safe_open

from wan_nb.core import repo_root
from wan_nb.jobs import rerun, run_job, sweep
from wan_nb.tracking import reset_tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    "A temporary MLflow store; the executed notebooks go to tmp_path/notebooks."
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    yield tmp_path
    reset_tracking()


def job(path, *cells):
    "A notebook with a parameters cell (`x`) followed by `cells`."
    code = [new_code_cell("x = 1\ny = 'b'", metadata={'tags': ['parameters']}), *(new_code_cell(c) for c in cells)]
    nbformat.write(new_notebook(cells=code, metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}}), path)
    return path


def artifacts(run_id, path):
    return [a.path for a in MlflowClient().list_artifacts(run_id, path)]


def notebooks(run_id):
    "The executed notebook's artifacts: .ipynb, and .html for the MLflow UI's artifact viewer."
    return [f'notebooks/{run_id}.html', f'notebooks/{run_id}.ipynb']


def test_a_job_that_succeeds_is_finished(store):
    res = run_job(job(store/'ok.ipynb', "import os\nprint(x, os.environ['MLFLOW_RUN_ID'])"), dict(x=5), name='ok', out_dir=store/'notebooks')
    run = MlflowClient().get_run(res['run_id'])
    assert (res['status'], run.info.status, res['error']) == ('FINISHED', 'FINISHED', None)
    assert run.data.params['x'] == '5' and run.info.run_name == 'ok'
    assert 'params.json' in artifacts(res['run_id'], None)
    assert artifacts(res['run_id'], 'notebooks') == notebooks(res['run_id'])
    assert nbformat.read(res['notebook'], 4).cells[-1].outputs[0]['text'] == f"5 {res['run_id']}\n"
    html = MlflowClient().download_artifacts(res['run_id'], f"notebooks/{res['run_id']}.html", str(store))
    assert f"5 {res['run_id']}" in open(html).read()  # the cell's output, as the UI shows it
    assert json.loads((store/'notebooks'/f"{res['run_id']}.ipynb").read_text())  # the executed notebook is where it says


def test_a_failing_cell_fails_the_run_and_keeps_the_notebook(store):
    res = run_job(job(store/'bad.ipynb', "raise ValueError('no data here')"), out_dir=store/'notebooks')
    run = MlflowClient().get_run(res['run_id'])
    assert (res['status'], run.info.status) == ('FAILED', 'FAILED')
    assert 'ValueError: no data here' in res['error'] and run.data.tags['wan_nb.error'] == res['error']
    assert artifacts(res['run_id'], 'notebooks') == notebooks(res['run_id'])


def test_a_killed_kernel_fails_the_run(store):
    res = run_job(job(store/'dead.ipynb', "import os\nos.kill(os.getpid(), 9)", "print('never')"), out_dir=store/'notebooks')
    run = MlflowClient().get_run(res['run_id'])
    assert (res['status'], run.info.status) == ('FAILED', 'FAILED')
    assert 'kernel died' in res['error'] and run.info.end_time
    assert artifacts(res['run_id'], 'notebooks') == notebooks(res['run_id'])


def test_an_unknown_parameter_is_refused_before_a_run_starts(store):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['rnak'\]; its parameters cell declares: x, y"):
        run_job(job(store/'ok.ipynb', 'pass'), dict(rnak=4), out_dir=store/'notebooks')


def test_a_failing_child_does_not_stop_the_sweep(store):
    rows = sweep(job(store/'flaky.ipynb', "assert x != 2, 'x = 2 is broken'"), dict(x=[1, 2], y=['a']), parallel=2, out_dir=store/'notebooks')
    client = MlflowClient()
    assert [(r['x'], r['status']) for r in rows] == [(1, 'FINISHED'), (2, 'FAILED')]
    assert [client.get_run(r['run_id']).info.status for r in rows] == ['FINISHED', 'FAILED']
    parent = rows[0]['parent_run_id']
    assert client.get_run(parent).info.status == 'FAILED'
    assert {client.get_run(r['run_id']).data.tags['mlflow.parentRunId'] for r in rows} == {parent}


def lora_tensors(path):
    with safe_open(path, 'pt') as f: return {k: f.get_tensor(k) for k in f.keys()}


def test_a_rerun_of_the_training_job_is_bit_identical(store, tiny_model_dir, demo_dir):
    (demo_dir/'held_out.toml').write_text((demo_dir/'dataset.toml').read_text().replace('bucket_no_upscale = true', 'bucket_no_upscale = true\nvalidation_split = 0.25'))
    out = repo_root()/'runs'/f'test-rerun-{uuid.uuid4().hex[:8]}'  # inside the repository: recorded relative to it
    params = dict(model=str(tiny_model_dir), dataset=str(demo_dir/'held_out.toml'), output_dir=str(out), max_train_steps=6,
                  checkpoint_every_n_steps=3, validate_every_n_steps=3, sample_prompts=None, learning_rate=1e-3,
                  validation_timesteps=[0.3, 0.7], probe_items=2)
    try: a_rerun_from_relative_paths_is_bit_identical(params, out, store/'notebooks')
    finally: shutil.rmtree(out, ignore_errors=True)


def a_rerun_from_relative_paths_is_bit_identical(params, out, notebooks):
    first = run_job(repo_root()/'nbs'/'jobs'/'train_lora.ipynb', params, name='train', out_dir=notebooks)
    assert first['status'] == 'FINISHED', first['error']
    client = MlflowClient()
    run, rel = client.get_run(first['run_id']), f'runs/{out.name}'
    assert mlflow.artifacts.load_dict(f'{run.info.artifact_uri}/params.json')['output_dir'] == rel  # what rerun reads
    assert (run.data.params['output_dir'], run.data.tags['output_dir']) == (rel, f"{rel}/{first['run_id']}")
    assert run.data.tags['wan_nb.lora'] == f"{rel}/{first['run_id']}/final/lora.safetensors"
    assert run.data.params['model'] == params['model']  # outside the repository: absolute
    again = rerun(first['run_id'], out_dir=notebooks)
    assert again['status'] == 'FINISHED', again['error']
    assert client.get_run(again['run_id']).data.tags['wan_nb.rerun_of'] == first['run_id']
    history = lambda run, key: [(m.step, m.value) for m in sorted(client.get_metric_history(run['run_id'], key), key=lambda m: m.step)]
    for key in ('train/loss', 'val/loss'):
        assert len(history(first, key)) == {'train/loss': 6, 'val/loss': 3}[key]
        assert history(first, key) == history(again, key)
    a, b = (lora_tensors(out/r['run_id']/'final'/'lora.safetensors') for r in (first, again))  # each run has its own folder
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_the_training_job_declares_every_run_option():
    import dataclasses, papermill as pm
    from wan_nb.train import RunConfig
    declared = pm.inspect_notebook(str(repo_root()/'nbs'/'jobs'/'train_lora.ipynb'))
    assert sorted(declared) == sorted([f.name for f in dataclasses.fields(RunConfig)] + ['resume', 'variant'])  # + the job's own


def test_a_boolean_parameter_from_the_command_line_is_a_bool():
    from wan_nb.jobs import collect_params, parse_grid
    assert collect_params([('gradient_checkpointing', 'False')]) == {'gradient_checkpointing': False}
    assert parse_grid(['gradient_checkpointing=True,False']) == {'gradient_checkpointing': [True, False]}
    with pytest.raises(ValueError, match='rank'): collect_params([('rank', 'eight')])
    assert collect_params([('anchor_a', 'runs:/0123'), ('adam_betas', '[0.9, 0.99]')]) == {'anchor_a': 'runs:/0123', 'adam_betas': [0.9, 0.99]}
