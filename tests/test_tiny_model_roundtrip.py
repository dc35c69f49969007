"The tiny Wan is a real diffusers Wan pipeline: it saves, loads and generates reproducibly."
import json

import pytest
import torch
from diffusers import WanPipeline

from wan_nb.models import load_wan, make_tiny_model, wan_pipeline

PROMPT = 'a red circle moves from left to right over a blue gradient background'


def generate(pipe, seed=0):
    pipe.set_progress_bar_config(disable=True)
    return pipe(PROMPT, num_frames=9, height=32, width=48, num_inference_steps=3,
                generator=torch.Generator().manual_seed(seed), output_type='pt').frames


def weight_files(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob('*')) if p.suffix in ('.safetensors', '.json')}


def test_plain_diffusers_loads_and_generates_nine_frames(tiny_model_dir):
    video = generate(WanPipeline.from_pretrained(tiny_model_dir))
    assert video.shape == (1, 9, 3, 32, 48)
    assert torch.isfinite(video).all() and 0 <= video.min() and video.max() <= 1


def test_save_load_round_trip_gives_identical_outputs(tiny_model_dir, tmp_path):
    first = WanPipeline.from_pretrained(tiny_model_dir)
    first.save_pretrained(tmp_path/'resaved')
    again = WanPipeline.from_pretrained(tmp_path/'resaved')
    assert torch.equal(generate(first), generate(again))
    assert torch.equal(generate(wan_pipeline(load_wan(tiny_model_dir))), generate(first))


def test_same_seed_same_bytes_other_seed_other_weights(tiny_model_dir, tmp_path):
    assert weight_files(make_tiny_model(tmp_path/'same', seed=0)) == weight_files(tiny_model_dir)
    other = weight_files(make_tiny_model(tmp_path/'other', seed=1))
    key = next(k for k in other if k.name == 'diffusion_pytorch_model.safetensors' and k.parent.name == 'transformer')
    assert other[key] != weight_files(tiny_model_dir)[key]


def test_small_on_disk_and_scheduler_is_uni_pc_flow(tiny_model_dir):
    assert sum(p.stat().st_size for p in tiny_model_dir.rglob('*') if p.is_file()) < 2_000_000
    sched = json.loads((tiny_model_dir/'scheduler'/'scheduler_config.json').read_text())
    assert (sched['_class_name'], sched['flow_shift'], sched['use_flow_sigmas']) == ('UniPCMultistepScheduler', 3.0, True)


def test_dtype_and_component_choices(tiny_model_dir):
    wan = load_wan(tiny_model_dir, components=('transformer', 'vae'), dtype=torch.bfloat16)
    assert wan.transformer.dtype == torch.bfloat16 and wan.vae.dtype == torch.float32
    assert wan.text_encoder is None and wan.tokenizer is None and not wan.transformer.training


def test_errors_name_the_directory_and_the_fix(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match=f'wan-nb tiny-model {tmp_path}'):
        load_wan(tmp_path)
    index = json.loads((tiny_model_dir/'model_index.json').read_text())
    bad = tmp_path/'bad'
    bad.mkdir()
    (bad/'model_index.json').write_text(json.dumps({**index, 'vae': ['os', 'system']}))
    with pytest.raises(ValueError, match="component 'vae' comes from 'os'"):
        load_wan(bad, components=('vae',))
