"""A team's MLflow server (`mlflow server`, SQLite backend, local artifact root) started for real on a free port:
a training job and a sweep log their runs, metrics and artifacts there; when the server is killed mid-run, training
goes on, the loss of contact is reported once, the metrics are kept and sent when it comes back (the run tagged with
the gap), or written to a file that `send_unsent` sends later."""
import os, signal, socket, subprocess, sys, time, warnings
from pathlib import Path

import mlflow
import nbformat
import pytest
import requests
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from wan_nb.core import repo_root
from wan_nb.jobs import run_job, sweep
from wan_nb.tracking import MLflowCallback, TrackingWarning, reset_tracking, send_unsent
from wan_nb.train import Callback, Trainer, load_run_config

MLFLOW = Path(sys.executable).parent/'mlflow'


class Server:
    "A real `mlflow server` on a free localhost port, which a test can kill and start again on the same store."
    def __init__(self, root: Path):
        self.root, self.proc = root, None
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
        self.uri = f'http://127.0.0.1:{self.port}'

    def start(self):
        cmd = [str(MLFLOW), 'server', '--backend-store-uri', f'sqlite:///{self.root}/mlflow.db',
               '--default-artifact-root', str(self.root/'artifacts'), '--host', '127.0.0.1', '--port', str(self.port),
               '--workers', '1', '--allowed-hosts', f'127.0.0.1:{self.port},localhost:{self.port}']
        with open(self.root/'server.log', 'ab') as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
        for _ in range(300):
            try:
                if requests.get(f'{self.uri}/health', timeout=1).ok: return self
            except requests.RequestException: pass
            assert self.proc.poll() is None, (self.root/'server.log').read_text()[-3000:]
            time.sleep(0.1)
        raise TimeoutError(f'mlflow server on port {self.port} did not answer /health in 30 s')

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its workers, at once
        self.proc.wait()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp('mlflow-server')).start()
    yield srv
    if srv.proc.poll() is None: srv.kill()


@pytest.fixture
def on_server(server, monkeypatch):
    "MLflow pointed at the server, with short HTTP retries so that an outage is noticed in a second."
    if server.proc.poll() is not None: server.start()
    monkeypatch.setenv('MLFLOW_TRACKING_URI', server.uri)
    for k, v in dict(MLFLOW_HTTP_REQUEST_MAX_RETRIES='1', MLFLOW_HTTP_REQUEST_TIMEOUT='5',
                     MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR='0').items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('MLFLOW_RUN_ID', raising=False)
    monkeypatch.delenv('MLFLOW_EXPERIMENT_ID', raising=False)
    reset_tracking()
    yield MlflowClient(server.uri)
    reset_tracking()


def test_a_job_and_a_sweep_log_to_the_team_server(on_server, tiny_model_dir, demo_dir, tmp_path):
    params = dict(model=str(tiny_model_dir), dataset=str(demo_dir/'dataset.toml'), output_dir=str(tmp_path/'out'),
                  max_train_steps=3, checkpoint_every_n_steps=3, validate_every_n_steps=None, sample_prompts=None)
    job = run_job(repo_root()/'nbs'/'jobs'/'train_lora.ipynb', params, name='team-job', out_dir=tmp_path/'nbs')
    assert job['status'] == 'FINISHED', job['error']
    run = on_server.get_run(job['run_id'])
    assert run.info.status == 'FINISHED' and run.data.params['max_train_steps'] == '3'
    assert [m.step for m in on_server.get_metric_history(job['run_id'], 'train/loss')] == [1, 2, 3]
    files = {a.path for d in (None, 'final', 'notebooks') for a in on_server.list_artifacts(job['run_id'], d)}
    assert {'record.json', 'params.json', 'final/lora.safetensors', f"notebooks/{job['run_id']}.ipynb"} <= files

    nb = tmp_path/'child.ipynb'
    nbformat.write(new_notebook(cells=[new_code_cell('x = 1', metadata={'tags': ['parameters']}),
                                       new_code_cell("import os\nassert os.environ['MLFLOW_TRACKING_URI'].startswith('http')")],
                                metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}}), nb)
    rows = sweep(nb, dict(x=[1, 2]), parallel=2, out_dir=tmp_path/'nbs')
    assert [(r['x'], r['status']) for r in rows] == [(1, 'FINISHED'), (2, 'FINISHED')]
    parent = on_server.get_run(rows[0]['parent_run_id'])
    assert parent.info.status == 'FINISHED' and {a.path for a in on_server.list_artifacts(parent.info.run_id)} >= {'sweep.json', 'sweep.md'}
    assert {on_server.get_run(r['run_id']).data.tags['mlflow.parentRunId'] for r in rows} == {parent.info.run_id}


class ServerFault(Callback):
    "Kills the server after step `kill_at`; starts it again (same port and store) after step `back_at`, if given."
    def __init__(self, server, kill_at, back_at=None): self.server, self.kill_at, self.back_at = server, kill_at, back_at
    def on_step_end(self, trainer, event):
        if event.step == self.kill_at: self.server.kill()
        if event.step == self.back_at: self.server.start()


def train_through(server, model, demo_dir, out, fault, wait_at_end_s, steps=6):
    cfg = load_run_config(overrides=dict(model=str(model), dataset=str(demo_dir/'dataset.toml'), output_dir=str(out),
                                         name=out.name, rank=4, max_train_steps=steps, checkpoint_every_n_steps=2,
                                         validate_every_n_steps=None, sample_prompts=None))
    tracker = MLflowCallback(system_metrics=False, retry_every_s=0.2, wait_at_end_s=wait_at_end_s)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        Trainer(cfg, [tracker, fault], progress=False).train()
    mine = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    return tracker, mine


def test_a_server_that_goes_away_and_returns_loses_no_metric(on_server, server, tiny_model_dir, demo_dir, tmp_path):
    tracker, said = train_through(server, tiny_model_dir, demo_dir, tmp_path/'gap', ServerFault(server, 2, 4), wait_at_end_s=30)
    assert sum('unreachable' in s for s in said) == 1, said  # once, not once per step
    run = on_server.get_run(tracker.run_id)
    assert run.info.status == 'FINISHED'
    assert [m.step for m in on_server.get_metric_history(tracker.run_id, 'train/loss')] == [1, 2, 3, 4, 5, 6]
    first, last = map(int, run.data.tags['wan_nb.tracking_gap'].split('-'))
    assert 1 <= first <= 3 and 4 <= last <= 6  # from the first step not yet sent when it went away
    files = {a.path for d in ('final', 'checkpoints/step_000004') for a in on_server.list_artifacts(tracker.run_id, d)}
    assert {'final/lora.safetensors', 'checkpoints/step_000004/lora.safetensors'} <= files
    assert not list((tmp_path/'gap').glob('mlflow_unsent_*'))


def test_a_server_still_away_at_the_end_gets_the_metrics_from_a_file(on_server, server, tiny_model_dir, demo_dir, tmp_path):
    tracker, said = train_through(server, tiny_model_dir, demo_dir, tmp_path/'away', ServerFault(server, 2), wait_at_end_s=1)
    assert mlflow.active_run() is None and sum('unreachable' in s for s in said) == 1, said
    (unsent,) = (tmp_path/'away').glob('mlflow_unsent_*.json')
    assert str(unsent) in said[-1] and 'send_unsent' in said[-1]  # the message says where, and how to send it
    server.start()
    sent = send_unsent(unsent)
    run = on_server.get_run(tracker.run_id)
    assert (sent['run_id'], run.info.status) == (tracker.run_id, 'FINISHED')
    assert [m.step for m in on_server.get_metric_history(tracker.run_id, 'train/loss')] == [1, 2, 3, 4, 5, 6]
    assert run.data.tags['wan_nb.tracking_gap'].endswith('-6') and run.data.tags['steps'] == '6'
    assert 'final/lora.safetensors' in {a.path for a in on_server.list_artifacts(tracker.run_id, 'final')}
