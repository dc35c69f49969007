"""A run that cannot train is refused before anything is planned, cached or loaded: an image-to-video model on
stills (frame 0 is given, so nothing is left to predict), and a timestep window that
leaves a Wan 2.2 expert nothing to draw (it used to make `sample_timesteps` loop forever)."""
import json
import re
import shutil
import signal

import pytest
import torch
from diffusers import WanTransformer3DModel

import wan_nb.train as train_module
from wan_nb.models import TINY_TRANSFORMER
from wan_nb.train import RunConfig, Trainer, TrainingError, load_run_config, sample_timesteps, timestep_window

DATASET = '''[general]
enable_bucket = true
[[datasets]]
image_directory = "{demo}/images"
cache_directory = "{cache}"
resolution = [64, 64]
'''


@pytest.fixture
def nothing_loaded(monkeypatch):
    "Fail the test if the trainer plans the dataset or loads a model."
    def forbidden(*args, **kw): raise AssertionError('planned or loaded before the refusal')
    for name in ('plan_dataset', 'build_cache', 'load_wan'): monkeypatch.setattr(train_module, name, forbidden)


def run_config(model, demo_dir, tmp_path, **kw):
    (tmp_path/'dataset.toml').write_text(DATASET.format(demo=demo_dir, cache=tmp_path/'cache'))
    return load_run_config(overrides=dict(model=str(model), dataset=str(tmp_path/'dataset.toml'),
                                          output_dir=str(tmp_path/'run'), max_train_steps=2, **kw))


def edited_model(tiny_model_dir, tmp_path, index=None, transformer=None):
    "A copy of the tiny model with `model_index.json` / `transformer/config.json` fields replaced."
    d = shutil.copytree(tiny_model_dir, tmp_path/'model')
    for file, changes in ((d/'model_index.json', index), (d/'transformer'/'config.json', transformer)):
        if changes: file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))
    return d


@pytest.mark.parametrize('channels', [dict(in_channels=36), dict(in_channels=36, image_dim=16, added_kv_proj_dim=64)])
def test_image_to_video_on_stills_is_refused_up_front(tiny_model_dir, demo_dir, tmp_path, nothing_loaded, channels):
    "An I2V model (Wan 2.2's and Wan 2.1's, read from the weights' shapes) is given frame 0: a still leaves nothing."
    model = edited_model(tiny_model_dir, tmp_path)
    shutil.rmtree(model/'transformer')
    WanTransformer3DModel(**{**TINY_TRANSFORMER, **channels}).save_pretrained(model/'transformer')
    message = (f"{tmp_path/'dataset.toml'}: {model} is custom, an image-to-video model: it is given frame 0 and "
               f"predicts the frames after it, so a single frame has nothing to predict. Remove [[datasets]] 0 "
               f"({demo_dir}/images: images)")
    with pytest.raises(TrainingError, match=re.escape(message)):
        Trainer(run_config(model, demo_dir, tmp_path), progress=False).train()
    assert not (tmp_path/'cache').exists() and not (tmp_path/'run').exists()


def wan22(tiny_model_dir, tmp_path):
    "The tiny model posing as Wan 2.2 A14B: its transformer copied as the low-noise expert, boundary 0.875."
    d = edited_model(tiny_model_dir, tmp_path, dict(transformer_2=['diffusers', 'WanTransformer3DModel'],
                                                     boundary_ratio=0.875))
    shutil.copytree(d/'transformer', d/'transformer_2')
    return d


@pytest.mark.parametrize('settings, message', [
    (dict(min_timestep=0.9), r'min_timestep 0.9 / max_timestep 1.0 leave the low-noise expert \(t < boundary 0.875\)'),
    (dict(max_timestep=0.8), r'min_timestep 0.0 / max_timestep 0.8 leave the high-noise expert \(t >= boundary 0.875\)'),
    (dict(min_timestep=0.875, expert='low'), r'min_timestep 0.875 .*the window \[0.875, 0.875\] is empty')])
def test_an_empty_expert_window_is_refused_before_loading(tiny_model_dir, demo_dir, tmp_path, nothing_loaded,
                                                          settings, message):
    with pytest.raises(ValueError, match=message):
        Trainer(run_config(wan22(tiny_model_dir, tmp_path), demo_dir, tmp_path, **settings), progress=False).train()
    assert not (tmp_path/'cache').exists()


@pytest.fixture
def deadline():
    "Turn a hang into a failure after 20 s."
    def hang(*_): raise TimeoutError('sample_timesteps did not return')
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_windows_that_cannot_be_sampled_raise_instead_of_spinning(deadline):
    g, shift = torch.Generator().manual_seed(0), RunConfig()
    with pytest.raises(ValueError, match=r'the window \[0.9, 0.875\] is empty'):
        sample_timesteps(shift, 4, g, (0.9, 0.875))
    with pytest.raises(ValueError, match='puts only .* of its draws in'):
        sample_timesteps(shift, 4, g, (0.0, 1e-3))  # shift 3: about 1e-12 of the draws
    with pytest.raises(ValueError, match='min_timestep 0.0 / max_timestep 0.001 leave the run nothing'):
        timestep_window(RunConfig(max_timestep=1e-3), None, 'single')
    narrow = sample_timesteps(RunConfig(timestep_sampling='uniform'), 8, g, (0.5, 0.51))
    assert ((narrow >= 0.5) & (narrow <= 0.51)).all()
