"""Wan 2.2 validation scores each timestep with the expert that serves it, picks the best checkpoint by the run's
metric, and `wan-nb evaluate` gives the numbers training logged, bit for bit."""
import json
import shutil

import pytest
import torch
from mlflow import MlflowClient

from wan_nb.models import load_wan, make_tiny_model
from wan_nb.tracking import training_callbacks
from wan_nb.train import Trainer, load_run_config
from wan_nb.validate import Evaluation, Validator, evaluate_checkpoints, expert_timesteps, stable_validation_loss

HELD_OUT = '''[general]
enable_bucket = true
validation_split = 0.25
[[datasets]]
image_directory = "images"
cache_directory = "cache/wan22_val_images"
resolution = [64, 64]
'''


@pytest.fixture(scope='module')
def dual_expert_model(tiny_model_dir, tmp_path_factory):
    "The tiny model with a second transformer as Wan 2.2's low-noise expert (boundary 0.875)."
    d = shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp('models')/'tiny-wan-2.2')
    shutil.copytree(make_tiny_model(tmp_path_factory.mktemp('seed1')/'tiny', seed=1)/'transformer', d/'transformer_2')
    index = json.loads((d/'model_index.json').read_text())
    (d/'model_index.json').write_text(json.dumps({**index, 'transformer_2': ['diffusers', 'WanTransformer3DModel'],
                                                  'boundary_ratio': 0.875}))
    return d


@pytest.fixture
def dataset(demo_dir):
    (demo_dir/'wan22_held_out.toml').write_text(HELD_OUT)
    return demo_dir/'wan22_held_out.toml'


def cfg(model, dataset, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=4,
                                          learning_rate=2e-3, max_train_steps=4, checkpoint_every_n_steps=2,
                                          validate_every_n_steps=2, expert_switch_every=1, **kw))


def metric(history, name): return [e.metrics()[name] for e in history]


def test_each_expert_is_scored_logged_and_picks_the_best(dual_expert_model, dataset, tmp_path):
    run_cfg = cfg(dual_expert_model, dataset, tmp_path/'both', best_metric='val/loss/high')
    callbacks = training_callbacks(run_cfg, experiment='wan22-validation', system_metrics=False)
    trainer = Trainer(run_cfg, callbacks, progress=False)
    trainer.train()
    validator = next(cb for cb in callbacks if isinstance(cb, Validator))
    sides = expert_timesteps(validator.timesteps, 0.875)
    assert [len(sides['high']), len(sides['low'])] == [5, 5] and [e.step for e in validator.history] == [0, 2, 4]

    # logged: validation.jsonl and MLflow carry each expert's loss at every evaluation
    lines = [Evaluation.from_dict(json.loads(l)) for l in (tmp_path/'both'/'validation.jsonl').read_text().splitlines()]
    assert lines == validator.history and all(e.boundary == 0.875 for e in lines)
    client = MlflowClient()
    callbacks[0].flush()
    for name in ('val/loss', 'val/loss/high', 'val/loss/low'):
        logged = [(m.step, m.value) for m in client.get_metric_history(callbacks[0].run_id, name)]
        assert logged == list(zip([0, 2, 4], metric(validator.history, name))), name

    # the best checkpoint is the one with the lowest val/loss/high, and best.json says so
    best = json.loads((tmp_path/'both'/'checkpoints'/'best'/'best.json').read_text())
    at_checkpoints = {e.step: e.metrics()['val/loss/high'] for e in validator.history if e.step in (2, 4)}
    assert (best['metric'], best['value']) == ('val/loss/high', min(at_checkpoints.values()))
    assert best['step'] == min(at_checkpoints, key=at_checkpoints.get)
    assert client.get_run(callbacks[0].run_id).data.tags['best_metric'] == 'val/loss/high'

    # each side moves only with its own expert's LoRA
    def perturbed(model):
        for name, p in model.named_parameters():
            if 'lora_B' in name: p.data += 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0))
    before = validator.score(trainer).metrics()
    perturbed(trainer.transformer_2)
    after_low = validator.score(trainer).metrics()
    assert after_low['val/loss/high'] == before['val/loss/high'] and after_low['val/loss/low'] != before['val/loss/low']
    perturbed(trainer.transformer)
    after_high = validator.score(trainer).metrics()
    assert after_high['val/loss/low'] == after_low['val/loss/low'] and after_high['val/loss/high'] != after_low['val/loss/high']

    # evaluate: the run's numbers for the same checkpoints, bit for bit, from lora_high_noise / lora_low_noise
    rows = evaluate_checkpoints(run_cfg, tmp_path/'both'/'checkpoints', progress=False)
    assert {r['checkpoint']: sorted(r['files']) for r in rows} == {'best': ['high', 'low'], 'step_000002': ['high', 'low'],
                                                                   'step_000004': ['high', 'low']}
    by_step = {e.step: e for e in validator.history}
    assert all(Evaluation.from_dict(r) == by_step[r['step']] for r in rows)


def test_an_untrained_expert_is_scored_by_the_base_model(dual_expert_model, dataset, tmp_path):
    validator = Validator(every_n_steps=2, best_metric='val/loss/low')
    trainer = Trainer(cfg(dual_expert_model, dataset, tmp_path/'low', expert='low'), [validator], progress=False)
    trainer.train()
    high = expert_timesteps(validator.timesteps, 0.875)['high']
    assert len(set(metric(validator.history, 'val/loss/high'))) == 1  # the base model's: the same at every step
    assert len(set(metric(validator.history, 'val/loss/low'))) == 3
    base = load_wan(dual_expert_model, components=('transformer',)).transformer
    assert stable_validation_loss(base, validator.batches['val'], validator.timesteps, ks=high)['per_timestep'] == \
        [validator.history[-1].val_per_timestep[k] for k in high]
    assert validator._bases == {}  # freed when training ended
    rows = evaluate_checkpoints(trainer.config, tmp_path/'low'/'checkpoints', progress=False)
    assert [Evaluation.from_dict(r) for r in rows if r['checkpoint'] != 'best'] == validator.history[1:]
    # with the trained expert's blocks swapped: on the CPU nothing moves, and validation leaves training bit-identical
    swapped = Validator(every_n_steps=2, best_metric='val/loss/low')
    Trainer(cfg(dual_expert_model, dataset, tmp_path/'swap', expert='low', blocks_to_swap=1), [swapped],
            progress=False).train()
    assert swapped.history == validator.history


def test_the_base_expert_makes_room_and_training_goes_on(dual_expert_model, dataset, tmp_path):
    "What a GPU does, on the CPU: the trained expert is parked while the base scores, and is back on for training."
    validator = Validator(every_n_steps=2)
    validator._makes_room = lambda trainer: True
    trainer = Trainer(cfg(dual_expert_model, dataset, tmp_path/'room', expert='low', blocks_to_swap=1), [validator],
                      progress=False)
    trainer.train()
    assert [e.step for e in validator.history] == [0, 2, 4] and len(trainer.losses) == 4
    assert not trainer.swaps['low'].parked
    high = metric(validator.history, 'val/loss/high')
    plain = Validator(every_n_steps=2)
    Trainer(cfg(dual_expert_model, dataset, tmp_path/'plain', expert='low'), [plain], progress=False).train()
    assert high == pytest.approx(metric(plain.history, 'val/loss/high'), rel=1e-6) and len(set(high)) == 1


def test_an_expert_metric_is_refused_without_experts(tiny_model_dir, dataset, tmp_path):
    with pytest.raises(ValueError, match="choose one of val/loss, val/loss/high, val/loss/low, probe/loss"):
        cfg(tiny_model_dir, dataset, tmp_path/'x', best_metric='val_loss')
    run_cfg = cfg(tiny_model_dir, dataset, tmp_path/'one', best_metric='val/loss/low')
    with pytest.raises(ValueError, match="has one transformer, no low-noise expert"):
        Trainer(run_cfg, training_callbacks(run_cfg, tracking=False), progress=False).train()
    assert not (tmp_path/'one'/'checkpoints').exists()  # refused before the first step
