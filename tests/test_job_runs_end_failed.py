"A job notebook run by hand owns its MLflow run: a cell that raises ends it FAILED, reaching the end ends it FINISHED."
import pytest
from execnb.shell import CaptureShell
from mlflow import MlflowClient

from wan_nb.tracking import reset_tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    monkeypatch.delenv('MLFLOW_RUN_ID', raising=False)
    yield tmp_path
    reset_tracking()


def run_by_hand(*cells):
    "Run `cells` one after the other in an IPython shell, stopping at the first that raises, as nbdev-test does."
    shell = CaptureShell()
    for c in cells:
        shell.run(c)
        if shell.exc: break
    return shell


START = "from wan_nb.jobs import job_run, end_job_run\nrun_id = job_run('by-hand', dict(rank=4), experiment='hand')"


def test_a_failing_cell_ends_the_hand_run_failed(store):
    shell = run_by_hand(START, "x = 1", "raise ValueError('no data')", "end_job_run()")
    assert isinstance(shell.exc, ValueError)
    run = MlflowClient().get_run(shell.user_ns['run_id'])
    assert run.info.status == 'FAILED' and run.info.end_time
    assert run.data.params == {'rank': '4'}


def test_a_job_that_reaches_its_end_is_finished(store):
    shell = run_by_hand(START, "x = 1", "end_job_run()")
    assert shell.exc is None
    assert MlflowClient().get_run(shell.user_ns['run_id']).info.status == 'FINISHED'
