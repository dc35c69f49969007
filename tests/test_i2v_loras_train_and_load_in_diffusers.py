"""An image-to-video LoRA of each kind (Wan 2.1 I2V, Wan 2.2 I2V A14B's two experts, TI2V 5B) trains on the tiny
models with a falling stable validation loss, and the files it saves load in diffusers' `WanImageToVideoPipeline`
with the same transformer output as the trainer's model, on the inputs the pipeline builds."""
import json

import pytest
import torch
from diffusers import WanImageToVideoPipeline
from safetensors.torch import load_file

from wan_nb.lora_io import read_lora
from wan_nb.models import make_tiny_model, model_task
from wan_nb.train import Trainer, load_run_config, model_inputs
from wan_nb.validate import Validator


def run_config(model, config, out, **kw):
    return load_run_config(overrides=dict(model=str(model), dataset=str(config), output_dir=str(out), rank=4,
                                          learning_rate=3e-3, timestep_sampling='uniform', checkpoint_every_n_steps=None,
                                          **kw))


def fixed_inputs(config):
    "The transformer's inputs for a fixed noisy input, text, and image latents / CLIP features where it reads them."
    g = torch.Generator().manual_seed(0)
    latents = lambda: torch.randn(1, config.out_channels, 2, 4, 4, generator=g)
    batch = dict(latents=latents(), text=torch.randn(1, 512, 32, generator=g), y=latents())
    if config.image_dim: batch['image'] = torch.randn(1, 17, config.image_dim, generator=g)
    return model_inputs(model_task(config), latents(), torch.tensor([0.95]), batch)


@pytest.mark.parametrize('variant', ['i2v-2.1', 'i2v-2.2', 'ti2v-5b'])
def test_i2v_lora_learns_and_loads_in_diffusers(variant, clips_val_dataset, tmp_path):
    model = make_tiny_model(tmp_path/'model', variant=variant)
    validator = Validator(every_n_steps=15)
    trainer = Trainer(run_config(model, clips_val_dataset, tmp_path/'run', max_train_steps=30, expert_switch_every=5),
                      callbacks=[validator], progress=False)
    final = trainer.train()
    val = [e.val_loss for e in validator.history]
    assert len(val) == 3 and val[-1] < val[0], val
    assert validator.score(trainer).val_loss == val[-1]  # the same items, timesteps and noise every time
    events = [json.loads(l) for l in (tmp_path/'run'/'events.jsonl').read_text().splitlines()]
    if variant == 'i2v-2.2':  # each expert on its side of Wan 2.2 I2V's boundary
        assert {e['expert'] for e in events} == {'high', 'low'}
        assert all((t >= 0.9) == (e['expert'] == 'high') for e in events for t in e['timesteps'])
    keys = set(load_file(next(final.glob('*.safetensors'))))
    meta = read_lora(next(final.glob('*.safetensors'))).metadata
    assert (meta['wan_nb.task'], meta['ss_base_model_version']) == {
        'i2v-2.1': ('i2v', 'wan2.1'), 'i2v-2.2': ('i2v', 'wan2.2'), 'ti2v-5b': ('ti2v', 'wan2.2')}[variant]
    has_image_layers = any('.cross_attn.k_img.' in k for k in keys) and any('.cross_attn.v_img.' in k for k in keys)
    assert has_image_layers == (variant == 'i2v-2.1')  # `all` takes Wan 2.1's image projections, ComfyUI names

    pipe = WanImageToVideoPipeline.from_pretrained(model)
    experts = {'transformer': trainer.transformer, 'transformer_2': trainer.transformer_2}
    files = {'transformer': 'lora.safetensors' if trainer.transformer_2 is None else 'lora_high_noise.safetensors',
             'transformer_2': 'lora_low_noise.safetensors'}
    for name, ours in experts.items():
        if ours is None: continue
        pipe.load_lora_weights(final/files[name], load_into_transformer_2=name == 'transformer_2')
        theirs = getattr(pipe, name)
        kw = fixed_inputs(theirs.config)
        with torch.no_grad(): torch.testing.assert_close(theirs(**kw)[0], ours.eval()(**kw)[0], atol=2e-5, rtol=1e-4)
