"""The 24 GB options in real training runs on the tiny model: each 8-bit base-weight mode trains (the loss falls) and
resumes exactly; block swap trains bit-identically to a resident run and resumes; with both Wan 2.2 experts exactly
one sits on the compute device at every step; refused combinations name the field."""
import json
import shutil

import pytest
import torch

from wan_nb.models import make_tiny_model
from wan_nb.quant import Linear8bit
from wan_nb.train import Callback, Trainer, TrainingError, load_run_config


def config(model, dataset, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(dataset), output_dir=str(out), rank=4,
                                          learning_rate=3e-3, timestep_sampling='uniform', **kw))


def losses(out):
    return [json.loads(l)['loss'] for l in (out/'events.jsonl').read_text().splitlines()]


def adapters(trainer):
    return {k: v.detach().clone() for k, v in trainer.transformer.state_dict().items() if 'lora_' in k}


@pytest.mark.parametrize('mode', ['fp8', 'int8', 'fp8_cast'])
def test_each_8bit_mode_trains_and_resumes_exactly(mode, tiny_model_dir, images_dataset, tmp_path):
    kw = dict(max_train_steps=16, checkpoint_every_n_steps=8, base_quantization=mode)
    full = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'full', **kw), progress=False)
    full.train()
    assert isinstance(full.transformer.blocks[0].attn1.to_q.base_layer, Linear8bit)
    curve = losses(tmp_path/'full')
    assert sum(curve[-4:]) < sum(curve[:4]), curve  # it learns
    part = tmp_path/'part'
    Trainer(config(tiny_model_dir, images_dataset, part, **kw | dict(max_train_steps=8)), progress=False).train()
    resumed = Trainer(config(tiny_model_dir, images_dataset, part, **kw), progress=False)
    resumed.train(resume='latest')
    assert losses(part) == curve
    assert all(torch.equal(a, b) for a, b in zip(adapters(resumed).values(), adapters(full).values()))


def test_block_swap_trains_like_the_resident_model_and_resumes(tiny_model_dir, images_dataset, tmp_path):
    kw = dict(max_train_steps=6, checkpoint_every_n_steps=3, gradient_checkpointing=True)
    resident = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'resident', **kw), progress=False)
    resident.train()
    swapped = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'swapped', blocks_to_swap=2, **kw),
                      progress=False)
    swapped.train()
    assert swapped.swaps['single'].swapped == [2, 3]
    assert losses(tmp_path/'swapped') == losses(tmp_path/'resident')
    assert all(torch.equal(a, b) for a, b in zip(adapters(swapped).values(), adapters(resident).values()))
    shutil.rmtree(tmp_path/'swapped'/'final')
    again = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'swapped', blocks_to_swap=2, **kw),
                    progress=False)
    again.train(resume=tmp_path/'swapped'/'checkpoints'/'step_000003')
    assert losses(tmp_path/'swapped') == losses(tmp_path/'resident')


def test_block_swap_with_fp8_weights_and_activation_offload(tiny_model_dir, images_dataset, tmp_path):
    kw = dict(max_train_steps=4, checkpoint_every_n_steps=None, base_quantization='fp8')
    plain = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'plain', gradient_checkpointing=True, **kw),
                    progress=False)
    plain.train()
    both = Trainer(config(tiny_model_dir, images_dataset, tmp_path/'both', blocks_to_swap=3, activation_offload=True,
                          **kw), progress=False)
    both.train()
    assert losses(tmp_path/'both') == losses(tmp_path/'plain')


class Residency(Callback):
    "Which experts are on the compute device (not parked) after each step."
    def __init__(self): self.seen = []
    def on_step_end(self, trainer, event):
        self.seen.append((event.expert, sorted(k for k, s in trainer.swaps.items() if not s.parked)))


def test_the_expert_trade_keeps_one_expert_on_the_device(tiny_model_dir, images_dataset, tmp_path):
    d = shutil.copytree(tiny_model_dir, tmp_path/'tiny-wan-2.2')
    shutil.copytree(make_tiny_model(tmp_path/'seed1', seed=1)/'transformer', d/'transformer_2')
    index = json.loads((d/'model_index.json').read_text())
    (d/'model_index.json').write_text(json.dumps({**index, 'transformer_2': ['diffusers', 'WanTransformer3DModel'],
                                                  'boundary_ratio': 0.875}))
    seen = Residency()
    kw = dict(max_train_steps=6, expert_switch_every=2, checkpoint_every_n_steps=3)
    Trainer(config(d, images_dataset, tmp_path/'run', **kw), callbacks=[seen], progress=False).train()
    assert seen.seen == [(e, [e]) for e in ['high', 'high', 'low', 'low', 'high', 'high']]
    full = losses(tmp_path/'run')
    shutil.rmtree(tmp_path/'run'/'final')
    Trainer(config(d, images_dataset, tmp_path/'run', **kw), progress=False).train(
        resume=tmp_path/'run'/'checkpoints'/'step_000003')
    assert losses(tmp_path/'run') == full


def test_refusals_name_the_field(tiny_model_dir, images_dataset, tmp_path):
    with pytest.raises(TrainingError, match='blocks_to_swap = 9, but .* has 4 blocks'):
        Trainer(config(tiny_model_dir, images_dataset, tmp_path/'a', blocks_to_swap=9), progress=False)._check_model()
    with pytest.raises(ValueError, match='base_quantization = .fp4.; choose one of none, fp8, int8, fp8_cast'):
        config(tiny_model_dir, images_dataset, tmp_path/'b', base_quantization='fp4')
    with pytest.raises(TrainingError, match="attention_backend = 'sage'"):
        Trainer(config(tiny_model_dir, images_dataset, tmp_path/'c', attention_backend='sage', max_train_steps=1),
                progress=False).train()


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_ones(tiny_model_dir, images_dataset, tmp_path):
    kw = dict(max_train_steps=3, checkpoint_every_n_steps=None, blocks_to_swap=1)
    Trainer(config(tiny_model_dir, images_dataset, tmp_path/'eager', **kw), progress=False).train()
    Trainer(config(tiny_model_dir, images_dataset, tmp_path/'compiled', compile=True, **kw), progress=False).train()
    assert losses(tmp_path/'compiled') == pytest.approx(losses(tmp_path/'eager'), rel=1e-4)
