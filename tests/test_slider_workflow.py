"The slider workflow on the demo: paired dense/sparse data, the make_slider job end to end, a slider equal to make_slider of its logged parents."
import av
import mlflow
import pytest
import torch
from mlflow import MlflowClient
from safetensors import safe_open

from wan_nb.core import repo_root
from wan_nb.demo_data import make_slider_pairs
from wan_nb.jobs import run_job
from wan_nb.plan import plan_dataset
from wan_nb.slider import make_slider
from wan_nb.tracking import reset_tracking


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    return make_slider_pairs(tmp_path_factory.mktemp('data')/'pairs', n_scenes=4)


def frames(path):
    with av.open(str(path)) as c: return [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]


def tensors(path):
    with safe_open(str(path), 'pt') as f: return {k: f.get_tensor(k) for k in f.keys()}


def test_pairs_are_the_same_scenes_with_empty_captions_and_plan(pairs):
    dense, sparse = (sorted((pairs/half/'videos').glob('*.mp4')) for half in ('dense', 'sparse'))
    assert [p.name for p in dense] == [p.name for p in sparse] == [f'scene_{i:02d}.mp4' for i in range(4)]
    for a, b in zip(dense, sparse):
        fa, fb = frames(a), frames(b)
        assert len(fa) == len(fb) == 17 and fa[0].shape == (64, 96, 3)
        assert any((x != y).any() for x, y in zip(fa, fb))  # the extra objects
        assert a.with_suffix('.txt').read_text() == b.with_suffix('.txt').read_text() == ''
    for half in ('dense', 'sparse'):
        plan = plan_dataset(pairs/half/'dataset.toml', progress=False)
        assert len(plan.items) == 4 and not plan.dropped
        assert {(i.width, i.height, i.frames, i.caption) for i in plan.items} == {(48, 32, 9, '')}


def test_the_job_logs_a_slider_that_is_its_parents_difference(pairs, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    options = dict(rank=2, weights=[1.0, 0.5], target='attn')
    params = dict(model=str(tiny_model_dir), pairs=str(pairs), output_dir=str(tmp_path/'out'), anchor_steps=2, anchor_rank=4,
                  strengths=[-3, 0, 3], preview_steps=1, preview_frames=5, **options)
    try:
        res = run_job(repo_root()/'nbs'/'jobs'/'make_slider.ipynb', params, name='slider', out_dir=tmp_path/'notebooks')
        assert res['status'] == 'FINISHED', res['error']
        run = MlflowClient().get_run(res['run_id'])
        assert run.info.status == 'FINISHED'
        tags = run.data.tags
        assert str(pairs/'dense'/'dataset.toml') in tags['wan_nb.parent_a'] and str(pairs/'sparse'/'dataset.toml') in tags['wan_nb.parent_b']
        assert tags['wan_nb.slider'] == 'slider/slider.safetensors' and run.data.params['rank'] == '2'
        got = {p: mlflow.artifacts.download_artifacts(run_id=res['run_id'], artifact_path=p, dst_path=str(tmp_path/'dl'/p.replace('/', '_')))
               for p in ('anchors/a/lora.safetensors', 'anchors/b/lora.safetensors', 'slider/slider.safetensors',
                         'slider/slider_analysis.json', 'figures/preview_grid.png', 'figures/slider_analysis.png')}
        # the same anchors again, one as an MLflow run id (its final/lora.safetensors, as the training job logs it), one as a file
        client = MlflowClient()
        source = client.create_run(run.info.experiment_id, run_name='train').info.run_id
        client.log_artifact(source, got['anchors/a/lora.safetensors'], 'final')
        params.update(anchor_a=f'runs:/{source}', anchor_b=got['anchors/b/lora.safetensors'], strengths=[0])
        res2 = run_job(repo_root()/'nbs'/'jobs'/'make_slider.ipynb', params, name='slider', out_dir=tmp_path/'notebooks')
        assert res2['status'] == 'FINISHED', res2['error']
        tags2 = client.get_run(res2['run_id']).data.tags
        assert tags2['wan_nb.parent_a'] == f'runs:/{source}/final/lora.safetensors'
        assert tags2['wan_nb.parent_b'] == got['anchors/b/lora.safetensors']
        second = mlflow.artifacts.download_artifacts(run_id=res2['run_id'], artifact_path='slider/slider.safetensors', dst_path=str(tmp_path/'dl2'))
    finally: reset_tracking()
    make_slider(got['anchors/a/lora.safetensors'], got['anchors/b/lora.safetensors'], tmp_path/'again.safetensors', **options)
    logged, again = tensors(got['slider/slider.safetensors']), tensors(tmp_path/'again.safetensors')
    assert logged.keys() == again.keys() and all('attn' in k for k in logged)
    assert all(torch.equal(logged[k], again[k]) for k in logged)
    second = tensors(second)  # the same slider from the same anchors given as a run id and a file
    assert second.keys() == logged.keys() and all(torch.equal(logged[k], second[k]) for k in logged)
