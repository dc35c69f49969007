"""Training runs are tracked in MLflow: params, metrics per step, evaluations, artifacts, the right final status, and a comparison table."""
import json
import os

import mlflow
import papermill as pm
import pytest
from mlflow.tracking import MlflowClient

from wan_nb.core import repo_root
from wan_nb.tracking import (MLflowCallback, reset_tracking, runs_table, setup_tracking, tracked_run, tracking_uri,
                             training_callbacks)
from wan_nb.train import Callback, Trainer, load_run_config
from wan_nb.validate import Validator

IMAGES_HELD_OUT = '''[general]
enable_bucket = true
validation_split = 0.25
[[datasets]]
image_directory = "images"
cache_directory = "cache/tracking_images"
resolution = [64, 64]
'''


@pytest.fixture
def store(tmp_path, monkeypatch):
    "A temporary MLflow store for one test; MLflow's process-wide state is reset afterwards."
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    monkeypatch.delenv('MLFLOW_RUN_ID', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_ID', raising=False)
    yield tmp_path
    reset_tracking()


def tracking_config(model, demo_dir, out, **kw):
    (demo_dir/'tracking.toml').write_text(IMAGES_HELD_OUT)
    return load_run_config(overrides=dict(model=str(model), dataset=str(demo_dir/'tracking.toml'), output_dir=str(out), name='tracked', rank=4,
                                          learning_rate=2e-3, max_train_steps=6, checkpoint_every_n_steps=3, timestep_sampling='uniform') | kw)


class StopAt(Callback):
    "Ends the run after `step` through `Trainer.request_stop`, as early stopping does."
    def __init__(self, step): self.step = step
    def on_step_end(self, trainer, event):
        if event.step == self.step: trainer.request_stop(f'no better val/loss since step {self.step - 1}')


def train(model, demo_dir, out, experiment='wan-nb'):
    cfg = tracking_config(model, demo_dir, out)
    validator = Validator(every_n_steps=3)
    Trainer(cfg, [MLflowCallback(experiment, system_metrics=False), validator], progress=False).train()
    return validator


def test_a_tracked_run_logs_params_metrics_and_artifacts_and_finishes(tiny_model_dir, demo_dir, store):
    validator = train(tiny_model_dir, demo_dir, store/'run')
    client = MlflowClient(tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name('wan-nb').experiment_id])
    assert run.info.status == 'FINISHED' and mlflow.active_run() is None
    p = run.data.params
    assert (p['rank'], p['learning_rate'], p['max_train_steps'], p['seed']) == ('4', '0.002', '6', '42')
    assert len(p['git.commit']) == 40 and p['packages.mlflow'] == mlflow.__version__
    assert run.data.tags['plan_fingerprint'] and run.data.tags['steps'] == '6'
    assert [m.step for m in client.get_metric_history(run.info.run_id, 'train/loss')] == [1, 2, 3, 4, 5, 6]
    val = client.get_metric_history(run.info.run_id, 'val/loss')
    assert [(m.step, m.value) for m in val] == [(e.step, e.val_loss) for e in validator.history] and [m.step for m in val] == [0, 3, 6]
    assert len([k for k in run.data.metrics if k.startswith('val/loss_t')]) == 9 and 'probe/loss' in run.data.metrics
    best = json.loads((store/'run'/'checkpoints'/'best'/'best.json').read_text())
    assert (run.data.tags['best_step'], float(run.data.tags['best_val_loss'])) == (str(best['step']), best['val_loss'])
    files = {a.path for folder in (None, 'final', 'figures', 'checkpoints/step_000006') for a in client.list_artifacts(run.info.run_id, folder)}
    assert {'record.json', 'events.jsonl', 'final/lora.safetensors', 'figures/plan.png', 'figures/validation.png',
            'checkpoints/step_000006/lora.safetensors'} <= files
    record = mlflow.artifacts.load_dict(f'runs:/{run.info.run_id}/record.json')
    assert record['config']['rank'] == 4 and record['plan_fingerprint'] == run.data.tags['plan_fingerprint']
    assert run.info.artifact_uri.startswith((store/'artifacts'/'wan-nb').as_uri())  # beside the store, not ./mlruns
    assert client.get_experiment_by_name('wan-nb').tags['mlflow.experimentKind'] == 'finetuning'  # UI: "Model training"

    (row,) = runs_table()
    first = min(val, key=lambda m: m.value)
    assert (row['run_id'], row['status'], row['rank'], row['steps']) == (run.info.run_id, 'FINISHED', '4', 6)
    assert (row['best_val_loss'], row['best_step']) == (first.value, first.step)
    assert runs_table("params.rank = '8'") == []


def test_a_job_run_is_joined_through_MLFLOW_RUN_ID_and_left_running(tiny_model_dir, demo_dir, store, monkeypatch):
    client = MlflowClient(tracking_uri())
    run_id = client.create_run(setup_tracking('jobs'), run_name='job').info.run_id  # what the orchestrator does
    client.log_param(run_id, 'rank', '4')  # the job's parameters, logged before the notebook runs
    monkeypatch.setenv('MLFLOW_RUN_ID', run_id)
    reset_tracking()  # the job's kernel is a fresh process
    assert tracking_uri() == f'sqlite:///{store}/mlflow.db'
    train(tiny_model_dir, demo_dir, store/'run')
    run = client.get_run(run_id)
    assert run.info.status == 'RUNNING'  # the orchestrator sets the final status
    assert mlflow.active_run().info.run_id == run_id
    assert run.data.params['rank'] == '4' and run.data.params['learning_rate'] == '0.002'
    assert [m.step for m in client.get_metric_history(run_id, 'train/loss')] == [1, 2, 3, 4, 5, 6]
    assert len(client.search_runs([client.get_experiment_by_name('jobs').experiment_id])) == 1  # no second run

    resumed = tracking_config(tiny_model_dir, demo_dir, store/'run', learning_rate=5e-5, max_train_steps=10)  # --set on resuming
    with pytest.warns(UserWarning, match="param 'learning_rate' was logged as '0.002'"):  # into the same run: params never change
        Trainer(resumed, [MLflowCallback(system_metrics=False), StopAt(7)], progress=False).train(resume='latest')
    run = client.get_run(run_id)
    assert (run.data.params['learning_rate'], run.data.tags['conflict.learning_rate']) == ('0.002', '5e-05')
    assert run.data.tags['wan_nb.resumed_from'] == 'checkpoints/step_000006'  # relative to the run folder, outside the repository
    assert run.data.tags['wan_nb.resume.learning_rate'] == '0.002 -> 5e-05'
    assert json.loads(mlflow.artifacts.load_text(f'runs:/{run_id}/resumes.jsonl'))['changes']['learning_rate'] == [0.002, 5e-05]
    assert run.data.tags['wan_nb.stop_reason'] == 'no better val/loss since step 6'  # early stopping's request_stop
    assert run.data.tags['mlflow.note.content'].startswith('Stopped early at step 7')


def test_compare_runs_job_draws_and_logs_its_figures(tiny_model_dir, demo_dir, store, monkeypatch, tmp_path):
    train(tiny_model_dir, demo_dir, store/'run')
    client = MlflowClient(tracking_uri())
    job = client.create_run(setup_tracking('wan-nb'), run_name='compare').info.run_id
    monkeypatch.setenv('MLFLOW_RUN_ID', job)
    pm.execute_notebook(str(repo_root()/'nbs'/'jobs'/'compare_runs.ipynb'), str(tmp_path/'out.ipynb'), parameters=dict(experiment='wan-nb'),
                        kernel_name='python3', cwd=str(tmp_path), progress_bar=False)
    logged = {a.path for a in client.list_artifacts(job)} | {a.path for a in client.list_artifacts(job, 'figures')}
    assert {'figures/compare_runs.png', 'compare_runs.md', 'compare_runs.json'} <= logged
    rows = mlflow.artifacts.load_dict(f'runs:/{job}/compare_runs.json')
    assert [r['name'] for r in rows] == ['tracked']  # only finished runs: not the job's own, still running


def test_the_store_defaults_to_the_repository_and_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    assert tracking_uri() == f'sqlite:///{repo_root()}/runs/mlflow.db' and os.path.isabs(tracking_uri().removeprefix('sqlite:///'))
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'http://mlflow.team:5000')
    assert tracking_uri() == 'http://mlflow.team:5000'
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/none.db')
    assert runs_table() == [] and not (tmp_path/'none.db').exists()  # reading never creates a store


def tracked_config(model, demo_dir, out, name, **kw):
    (demo_dir/'tracking.toml').write_text(IMAGES_HELD_OUT)
    (demo_dir/'tracking_prompts.txt').write_text('a red square slides --w 32 --h 32 --f 5 --s 2 --d 7\n')
    return load_run_config(overrides=dict(model=str(model), dataset=str(demo_dir/'tracking.toml'), output_dir=str(out),
                                          name=name, rank=4, learning_rate=2e-3, max_train_steps=4,
                                          checkpoint_every_n_steps=2, timestep_sampling='uniform', validate_every_n_steps=2,
                                          sample_prompts=str(demo_dir/'tracking_prompts.txt'), sample_every_n_steps=2, **kw))


def logged(client, run):
    "What a run logged, without the values that differ from run to run."
    rid = run.info.run_id
    files = sorted(a.path for d in (None, 'checkpoints', 'figures', 'final', 'previews') for a in client.list_artifacts(rid, d))
    return dict(params=sorted(k for k in run.data.params if k not in ('name', 'output_dir')), metrics=sorted(k for k in run.data.metrics if not k.startswith('system/')),  # sampled every 10 s
                steps={k: [m.step for m in client.get_metric_history(rid, k)] for k in ('train/loss', 'val/loss')},
                tags=sorted(k for k in run.data.tags if not k.startswith('mlflow.')), files=files)


def test_a_run_started_the_cli_way_is_tracked_like_the_notebook_way(tiny_model_dir, demo_dir, store):
    from wan_nb.sample import PreviewCallback
    cli = tracked_config(tiny_model_dir, demo_dir, store/'cli', 'cli')
    Trainer(cli, callbacks=training_callbacks(cli), progress=False).train()  # what `wan-nb train` does
    nb = tracked_config(tiny_model_dir, demo_dir, store/'nb', 'notebook')  # the callbacks a job listed by hand
    Trainer(nb, [MLflowCallback(), Validator(2, None, nb.probe_items, nb.validation_batch_size),
                 PreviewCallback(nb.sample_prompts, 2)], progress=False).train()
    client = MlflowClient(tracking_uri())
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name('wan-nb').experiment_id])}
    assert set(runs) == {'cli', 'notebook'} and {r.info.status for r in runs.values()} == {'FINISHED'}
    assert logged(client, runs['cli']) == logged(client, runs['notebook'])
    got = logged(client, runs['cli'])
    assert got['steps'] == {'train/loss': [1, 2, 3, 4], 'val/loss': [0, 2, 4]}
    assert {'best_step', 'best_val_loss', 'plan_fingerprint', 'steps'} <= set(got['tags'])
    assert {'final/lora.safetensors', 'figures/validation.png', 'checkpoints/best', 'previews/step_000004'} <= set(got['files'])


def test_training_callbacks_follow_the_run_config(tiny_model_dir, demo_dir, store):
    cfg = tracked_config(tiny_model_dir, demo_dir, store/'run', 'x')
    assert [type(cb).__name__ for cb in training_callbacks(cfg)] == ['MLflowCallback', 'Validator', 'PreviewCallback']
    bare = load_run_config(overrides=dict(model=str(tiny_model_dir), dataset=str(demo_dir/'tracking.toml'),
                                          validate_every_n_steps=None, sample_prompts=None))
    assert training_callbacks(bare, tracking=False) == []
    assert training_callbacks(cfg, experiment='other')[0].experiment == 'other'


def test_a_hand_started_run_ends_failed_when_its_block_raises(store, monkeypatch):
    with pytest.raises(RuntimeError, match='cell failed'):
        with tracked_run('by-hand') as run:
            mlflow.log_param('rank', '4')
            raise RuntimeError('a cell failed')
    assert MlflowClient(tracking_uri()).get_run(run.info.run_id).info.status == 'FAILED' and mlflow.active_run() is None
    with pytest.raises(KeyboardInterrupt):
        with tracked_run('interrupted') as run: raise KeyboardInterrupt
    assert MlflowClient(tracking_uri()).get_run(run.info.run_id).info.status == 'KILLED'
    with tracked_run('ok') as run: mlflow.log_param('rank', '4')
    assert MlflowClient(tracking_uri()).get_run(run.info.run_id).info.status == 'FINISHED'


def test_a_job_under_the_orchestrator_leaves_its_run_to_it_and_files_its_experiment_under_model_training(store, monkeypatch):
    client = MlflowClient(tracking_uri())
    theirs = client.create_experiment('theirs')  # another orchestrator's experiment, without a kind
    run_id = client.create_run(theirs, run_name='job').info.run_id
    monkeypatch.setenv('MLFLOW_RUN_ID', run_id)
    reset_tracking()
    with pytest.raises(RuntimeError):
        with tracked_run('ignored') as run:
            assert run.info.run_id == run_id
            raise RuntimeError('a cell failed')
    assert client.get_run(run_id).info.status == 'RUNNING'  # `wan-nb run` marks it FAILED from the papermill error
    client.create_experiment('mine', tags={'mlflow.experimentKind': 'genai_development'})  # a kind its owner chose
    for name in ('mine', 'new'): setup_tracking(name)
    kinds = {n: client.get_experiment_by_name(n).tags.get('mlflow.experimentKind') for n in ('theirs', 'mine', 'new')}
    assert kinds == {'theirs': 'finetuning', 'mine': 'genai_development', 'new': 'finetuning'}  # UI: "Model training"

