"""A Wan 2.2 run that trains one expert previews with the base other one (defect: `expert = "low"` raised AttributeError)."""
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

import wan_nb.sample as sample
from wan_nb.models import load_wan, make_tiny_model
from wan_nb.sample import PreviewCallback, PromptSpec, generate_preview
from wan_nb.train import Trainer, load_run_config

IMAGES = '''[general]
enable_bucket = true
[[datasets]]
image_directory = "images"
cache_directory = "cache/wan22_preview_images"
resolution = [64, 64]
'''
SPEC = PromptSpec('a red circle rises', width=32, height=32, frames=5, seed=3, steps=4, guidance=1.0)


@pytest.fixture
def wan22(tiny_model_dir, tmp_path):
    "The tiny model with a second transformer as Wan 2.2's low-noise expert (boundary 0.875)."
    d = shutil.copytree(tiny_model_dir, tmp_path/'tiny-wan-2.2')
    shutil.copytree(make_tiny_model(tmp_path/'seed1', seed=1)/'transformer', d/'transformer_2')
    index = json.loads((d/'model_index.json').read_text())
    index.update(transformer_2=['diffusers', 'WanTransformer3DModel'], boundary_ratio=0.875)
    (d/'model_index.json').write_text(json.dumps(index))
    yield d
    sample.base_expert.cache_clear()
    sample.preview_components.cache_clear()


def test_only_the_low_noise_expert_given_samples_with_the_base_high_noise_one(wan22):
    wan = load_wan(wan22, components=('transformer', 'transformer_2'))
    both = generate_preview(wan.transformer, wan22, SPEC, transformer_2=wan.transformer_2)
    assert torch.equal(generate_preview(None, wan22, SPEC, transformer_2=wan.transformer_2), both)
    with torch.no_grad():  # a changed low-noise expert changes the preview: it is the one sampled with
        for p in wan.transformer_2.parameters(): p.mul_(1.5)
    assert not torch.equal(generate_preview(None, wan22, SPEC, transformer_2=wan.transformer_2), both)


def test_a_low_expert_run_writes_its_previews(wan22, demo_dir, tmp_path):
    (demo_dir/'wan22_previews.toml').write_text(IMAGES)
    (tmp_path/'prompts.txt').write_text('a red circle rises --w 32 --h 32 --f 5 --s 4 --d 3 --l 1\n')
    cfg = load_run_config(overrides=dict(model=str(wan22), dataset=str(demo_dir/'wan22_previews.toml'),
                                         output_dir=str(tmp_path/'run'), rank=4, learning_rate=3e-3, expert='low',
                                         max_train_steps=2, checkpoint_every_n_steps=None, timestep_sampling='uniform'))
    previews = PreviewCallback(tmp_path/'prompts.txt', every_n_steps=2, at_first=True)
    trainer = Trainer(cfg, [previews], progress=False)
    trainer.train()
    assert trainer.transformer is None and trainer.transformer_2 is not None  # what made previews fail before
    assert [(step, mp4.name) for step, mp4, _ in previews.written] == [(0, '00_a-red-circle-rises.mp4'),
                                                                       (2, '00_a-red-circle-rises.mp4')]
    assert all(mp4.is_file() and png.is_file() for _, mp4, png in previews.written)
