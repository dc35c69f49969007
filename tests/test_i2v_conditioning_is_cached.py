"""Image-to-video conditions are cached per window exactly as diffusers' WanImageToVideoPipeline computes them:
`y` (the first frame, or the control image, then blank frames, through the VAE) and Wan 2.1's CLIP features."""
import shutil

import numpy as np
import pytest
import torch
from diffusers import WanImageToVideoPipeline
from PIL import Image

from wan_nb.cache import build_cache, load_entry, model_cache_index, verify_cache
from wan_nb.media import read_frames
from wan_nb.models import make_tiny_model
from wan_nb.plan import plan_dataset

CONFIG = ('[[datasets]]\nvideo_directory = "videos"\ncache_directory = "cache/{name}"\nresolution = [64, 32]\n'
          'target_frames = [9]\n')
Y_ATOL = 2e-6  # measured 2.4e-7 on values up to 3.7: the pipeline scales pixels by 1/255 and latents by * (1/std),
#                the cache by 1/127.5 and / std (float rounding)
IMAGE_ATOL = 1e-6  # measured 0 (bit-identical): the same processor and encoder on the same PIL image


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "The tiny image-to-video models."
    d = tmp_path_factory.mktemp('i2v-models')
    return {v: make_tiny_model(d/v, variant=v) for v in ('i2v-2.1', 'i2v-2.2', 'ti2v-5b')}


@pytest.fixture(scope='module')
def clips(demo_dir, tmp_path_factory):
    "Two demo clips, a square control image for each (another picture, another aspect), and a config writer."
    d = tmp_path_factory.mktemp('two-clips')
    (d/'videos').mkdir(); (d/'control').mkdir()
    for i in range(2):
        for ext in ('mp4', 'txt'): shutil.copy(demo_dir/'videos'/f'clip_{i:02d}.{ext}', d/'videos'/f'clip_{i:02d}.{ext}')
        u, v = np.meshgrid(np.linspace(0, 1, 80), np.linspace(0, 1, 80))
        Image.fromarray((np.stack([u, v, 1 - u * v], -1) * 255).astype(np.uint8)).save(d/'control'/f'clip_{i:02d}.png')
    return d


def plan_of(clips, name: str, control: bool = False):
    (clips/f'{name}.toml').write_text(CONFIG.format(name=name) + ('control_directory = "control"\n' if control else ''))
    return plan_dataset(clips/f'{name}.toml', progress=False)


@pytest.fixture(scope='module')
def cached_21(models, clips):
    "The two clips cached for the tiny Wan 2.1 I2V model: (plan, report)."
    plan = plan_of(clips, 'i2v21')
    return plan, build_cache(plan, models['i2v-2.1'], device='cpu', progress=False)


def pipeline_condition(pipe, first: torch.Tensor, item) -> tuple[torch.Tensor, torch.Tensor]:
    "(y, CLIP features) as WanImageToVideoPipeline.__call__ builds them for uint8 image `first` (H, W, 3)."
    image = Image.fromarray(first.numpy())
    pixels = pipe.video_processor.preprocess(image, height=item.height, width=item.width).to(torch.float32)
    _, condition = pipe.prepare_latents(pixels, 1, 16, item.height, item.width, item.frames, torch.float32, 'cpu')
    return condition[0, 4:], pipe.encode_image(image, 'cpu')[0]  # condition = cat(mask (4 channels), y)


def test_wan21_condition_equals_the_pipeline(models, cached_21):
    plan, report = cached_21
    assert report.conditions == dict(encoded=2, reused=0, failed=0) and not report.failures
    pipe = WanImageToVideoPipeline.from_pretrained(models['i2v-2.1'])
    for entry in model_cache_index(plan, models['i2v-2.1']).entries:
        item, cached = entry.item, load_entry(entry)
        assert item.start == 0 and item.control is None
        y, image = pipeline_condition(pipe, read_frames(item.path, [0], (item.width, item.height))[0], item)
        torch.testing.assert_close(cached['y'], y, rtol=0, atol=Y_ATOL)
        torch.testing.assert_close(cached['image'], image, rtol=0, atol=IMAGE_ATOL)
        assert cached['y'].shape == cached['latents'].shape and cached['image'].shape == (17, 32)


def test_second_run_reuses_every_condition(models, cached_21):
    plan, _ = cached_21
    again = build_cache(plan, models['i2v-2.1'], device='cpu', progress=False)
    assert again.conditions == dict(encoded=0, reused=2, failed=0)
    assert (again.latents['encoded'], again.texts['encoded']) == (0, 0)


def test_control_image_replaces_the_first_frame(models, clips, cached_21):
    model, (plain_plan, _) = models['i2v-2.1'], cached_21
    plan = plan_of(clips, 'control', control=True)
    assert build_cache(plan, model, device='cpu', progress=False).conditions['encoded'] == 2
    plain, control = (model_cache_index(p, model) for p in (plain_plan, plan))
    pipe = WanImageToVideoPipeline.from_pretrained(model)
    for a, b in zip(plain.entries, control.entries):
        assert b.item.control and a.latents.name == b.latents.name  # the same latents ...
        assert plain.conditions[a.condition][1] != control.conditions[b.condition][1]  # ... another condition key
        item, cached = b.item, load_entry(b)
        y, image = pipeline_condition(pipe, read_frames(item.control, [0], (item.width, item.height))[0], item)
        torch.testing.assert_close(cached['y'], y, rtol=0, atol=Y_ATOL)
        torch.testing.assert_close(cached['image'], image, rtol=0, atol=IMAGE_ATOL)
        assert (cached['y'] - load_entry(a)['y']).abs().max() > 0.1


def test_wan22_conditions_have_no_clip_and_ti2v_has_none(models, clips):
    plan = plan_of(clips, 'i2v22')
    report = build_cache(plan, models['i2v-2.2'], device='cpu', progress=False)
    assert report.conditions == dict(encoded=2, reused=0, failed=0)
    entries = model_cache_index(plan, models['i2v-2.2']).entries
    assert [sorted(load_entry(e)) for e in entries] == [['latents', 'text', 'y']] * 2
    plan = plan_of(clips, 'ti2v')
    report = build_cache(plan, models['ti2v-5b'], device='cpu', progress=False)
    assert report.conditions == dict(encoded=0, reused=0, failed=0) and report.latents['encoded'] == 2
    index = model_cache_index(plan, models['ti2v-5b'])
    assert [e.condition for e in index.entries] == [None, None]
    assert not (clips/'cache'/'ti2v'/'condition').exists()
    assert verify_cache(index, progress=False) == []  # 48-channel latents at 1/16 of the size are what it expects
