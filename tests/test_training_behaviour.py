"""Trainer behaviour on the tiny model: non-finite loss stops the run, saved LoRAs load in diffusers, Wan 2.2 experts,
AdamW8bit and LR schedules."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import WanPipeline
from diffusers.optimization import get_scheduler

from wan_nb.models import make_tiny_model
from wan_nb.train import Trainer, TrainingError, load_run_config

SMALL = '''[general]
enable_bucket = true
[[datasets]]
image_directory = "images"
cache_directory = "cache/behaviour_images"
resolution = [64, 64]
'''


@pytest.fixture
def config(demo_dir):
    (demo_dir/'behaviour.toml').write_text(SMALL)
    return demo_dir/'behaviour.toml'


def cfg(model, config, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(config), output_dir=str(out), rank=4, learning_rate=3e-3,
                                     timestep_sampling='uniform', checkpoint_every_n_steps=2, **kw))


def test_non_finite_loss_stops_at_that_step_and_keeps_the_last_checkpoint(tiny_model_dir, config, tmp_path, monkeypatch):
    loss = Trainer._loss
    def nan_at_step_5(self, model, batch, window):
        value, t, dop = loss(self, model, batch, window)
        return (value * float('nan'), t, dop) if self.step == 4 else (value, t, dop)
    monkeypatch.setattr(Trainer, '_loss', nan_at_step_5)
    with pytest.raises(TrainingError, match=r'step 5: the loss is nan .*Last good checkpoint: .*step_000004'):
        Trainer(cfg(tiny_model_dir, config, tmp_path/'run', max_train_steps=10), progress=False).train()
    assert sorted(p.name for p in (tmp_path/'run'/'checkpoints').iterdir()) == ['step_000002', 'step_000004']
    assert len((tmp_path/'run'/'events.jsonl').read_text().splitlines()) == 4


def test_saved_lora_loads_in_diffusers_with_the_same_output(tiny_model_dir, config, tmp_path):
    trainer = Trainer(cfg(tiny_model_dir, config, tmp_path/'run', max_train_steps=6), progress=False)
    final = trainer.train()
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 16, 1, 8, 8, generator=g), torch.randn(1, 512, 32, generator=g)
    t = torch.tensor([600.0])
    with torch.no_grad():
        ours = trainer.transformer.eval()(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
        pipe = WanPipeline.from_pretrained(tiny_model_dir)
        base = pipe.transformer(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
        pipe.load_lora_weights(final/'lora.safetensors')
        theirs = pipe.transformer(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    assert not torch.allclose(ours, base, atol=1e-4)  # training changed the model
    torch.testing.assert_close(theirs, ours, atol=2e-5, rtol=1e-4)


def dual_expert_model(tiny_model_dir, tmp_path) -> Path:
    "The tiny model with a second transformer as Wan 2.2's low-noise expert (boundary 0.875)."
    d = shutil.copytree(tiny_model_dir, tmp_path/'tiny-wan-2.2')
    shutil.copytree(make_tiny_model(tmp_path/'seed1', seed=1)/'transformer', d/'transformer_2')
    index = json.loads((d/'model_index.json').read_text())
    (d/'model_index.json').write_text(json.dumps({**index, 'transformer_2': ['diffusers', 'WanTransformer3DModel'], 'boundary_ratio': 0.875}))
    return d


def test_wan22_experts_train_on_their_side_of_the_boundary(tiny_model_dir, config, tmp_path):
    model = dual_expert_model(tiny_model_dir, tmp_path)
    Trainer(cfg(model, config, tmp_path/'both', max_train_steps=8, expert_switch_every=2), progress=False).train()
    events = [json.loads(l) for l in (tmp_path/'both'/'events.jsonl').read_text().splitlines()]
    assert [e['expert'] for e in events] == ['high', 'high', 'low', 'low'] * 2
    assert all(t >= 0.875 for e in events if e['expert'] == 'high' for t in e['timesteps'])
    assert all(t <= 0.875 for e in events if e['expert'] == 'low' for t in e['timesteps'])
    assert sorted(p.name for p in (tmp_path/'both'/'final').iterdir()) == ['lora_high_noise.safetensors', 'lora_low_noise.safetensors']
    Trainer(cfg(model, config, tmp_path/'low', max_train_steps=2, expert='low'), progress=False).train()
    assert [p.name for p in (tmp_path/'low'/'final').iterdir()] == ['lora_low_noise.safetensors']


def test_adamw8bit_and_cosine_warmup_schedule(tiny_model_dir, config, tmp_path):
    trainer = Trainer(cfg(tiny_model_dir, config, tmp_path/'run', max_train_steps=6, optimizer='adamw8bit', lr_scheduler='cosine',
                          lr_warmup_steps=2), progress=False)
    trainer.train()
    lrs = [json.loads(l)['lr'] for l in (tmp_path/'run'/'events.jsonl').read_text().splitlines()]
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-3)
    ref = get_scheduler('cosine', sgd, num_warmup_steps=2, num_training_steps=6)
    expected = []
    for _ in range(6): sgd.step(); ref.step(); expected.append(ref.get_last_lr()[0])
    assert lrs == pytest.approx(expected) and type(trainer.optimizer.optimizer).__name__ == 'AdamW8bit'
