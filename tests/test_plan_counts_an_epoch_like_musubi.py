"""What one epoch holds: the items, batches and drops musubi-tuner would give, plus wan-nb's validation split."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from wan_nb.demo_data import write_clip
from wan_nb.media import ProbeCache
from wan_nb.plan import load_dataset_config, plan_dataset

RECIPE = '''[general]
caption_extension = ".txt"
enable_bucket = true
bucket_no_upscale = true
{extra}
[[datasets]]
image_directory = "images"
cache_directory = "cache/images"
resolution = [64, 64]
num_repeats = 2

[[datasets]]
video_directory = "videos"
cache_directory = "cache/heads"
resolution = [64, 32]
frame_extraction = "head"
target_frames = [1, 21]
batch_size = 2

[[datasets]]
video_directory = "videos"
cache_directory = "cache/uniform"
resolution = [32, 16]
frame_extraction = "uniform"
target_frames = [45]
frame_sample = 2
source_fps = 30.0
'''


def make_recipe(root: Path, extra: str = '') -> Path:
    "The REFERENCE.md three-section recipe in miniature: 6 stills, 10 clips at 30 fps, two too short at 16 fps."
    (root/'images').mkdir(parents=True); (root/'videos').mkdir()
    for i in range(6):
        Image.new('RGB', (128, 96), (40 * i, 0, 0)).save(root/'images'/f'still_{i}.png')
        (root/'images'/f'still_{i}.txt').write_text(f'still {i}')
    for i in range(10):
        frames = 90 if i < 8 else 60  # at 16 fps: 90 -> 48 frames, 60 -> 32 (fewer than 45)
        write_clip(root/'videos'/f'clip_{i}.mp4', [np.full((72, 128, 3), (2 * k + 9 * i) % 256, np.uint8) for k in range(frames)], 30)
        (root/'videos'/f'clip_{i}.txt').write_text(f'clip {i}')
    (root/'dataset.toml').write_text(RECIPE.format(extra=extra))
    return root/'dataset.toml'


def test_items_batches_and_the_two_missing_samples(tmp_path):
    plan = plan_dataset(make_recipe(tmp_path), progress=False)
    # images: 6 x 2 repeats; heads: 10 clips x 2 targets; uniform: 8 clips x 2 samples (2 clips too short)
    assert plan.epoch['items'] == 12 + 20 + 16
    heads = [b for b in plan.buckets() if b.dataset == 1]
    assert plan.epoch['batches'] == 12 + sum(math.ceil(b.items / 2) for b in heads) + 16
    assert sorted(d.reason for d in plan.dropped) == [
        'videos/clip_8.mp4: 32 frames at 16 fps < target 45', 'videos/clip_9.mp4: 32 frames at 16 fps < target 45']
    assert sorted({i.start for i in plan.items if i.dataset == 2}) == [0, 3]  # 2 samples spread over 48 - 45 + 1 starts


def test_json_config_plans_like_the_toml(tmp_path):
    toml_plan = plan_dataset(make_recipe(tmp_path), progress=False)
    import tomllib
    (tmp_path/'dataset.json').write_text(json.dumps(tomllib.loads((tmp_path/'dataset.toml').read_text())))
    json_plan = plan_dataset(tmp_path/'dataset.json', progress=False)
    assert json_plan.items == toml_plan.items and json_plan.fingerprint == toml_plan.fingerprint


def test_jsonl_sources(tmp_path):
    make_recipe(tmp_path)
    lines = [json.dumps({'video_path': f'videos/clip_{i}.mp4', 'caption': f'from jsonl {i}'}) for i in range(3)]
    (tmp_path/'clips.jsonl').write_text('\n'.join(lines) + '\n')
    (tmp_path/'jsonl.toml').write_text('[[datasets]]\nvideo_jsonl_file = "clips.jsonl"\ntarget_frames = [1]\n')
    plan = plan_dataset(tmp_path/'jsonl.toml', progress=False)
    assert [(i.source, i.caption) for i in plan.items] == [(f'videos/clip_{i}.mp4', f'from jsonl {i}') for i in range(3)]


def test_validation_split_is_by_source_across_datasets(tmp_path):
    plan = plan_dataset(make_recipe(tmp_path, 'validation_split = 0.25'), progress=False)
    splits = {}
    for item in plan.items: splits.setdefault(item.content, set()).add(item.split)
    assert all(len(s) == 1 for s in splits.values()), 'a source with windows on both sides'
    val_sources = {i.source for i in plan.items if i.split == 'val'}
    assert len(val_sources) == round(0.25 * 16)  # 6 stills + 10 clips
    assert plan.epoch['items'] == sum(i.repeats for i in plan.items if i.split == 'train')
    again = plan_dataset(tmp_path/'dataset.toml', progress=False)
    assert {i.source for i in again.items if i.split == 'val'} == val_sources


def test_val_datasets_and_caption_dropout(tmp_path):
    make_recipe(tmp_path)
    (tmp_path/'val.toml').write_text('[general]\ncaption_dropout = 0.1\n[[datasets]]\nimage_directory = "images"\n'
                                     '[[val_datasets]]\nvideo_directory = "videos"\ntarget_frames = [1]\n')
    cfg = load_dataset_config(tmp_path/'val.toml')
    assert [(d.split, d.caption_dropout) for d in cfg.datasets] == [('train', 0.1), ('val', 0.1)]
    plan = plan_dataset(cfg, progress=False)
    assert {i.split for i in plan.items if i.kind == 'video'} == {'val'} and plan.epoch['items'] == 6


def test_replanning_reads_the_probe_cache_not_the_clips(tmp_path):
    config = make_recipe(tmp_path)
    cold = ProbeCache(tmp_path/'probes.json')
    plan_dataset(config, cold, progress=False)
    warm = ProbeCache(tmp_path/'probes.json')
    plan_dataset(config, warm, progress=False)
    assert cold.misses == 16 and (warm.hits, warm.misses) == (6 + 10 + 10, 0)


def test_plan_command_writes_json_and_figure(tmp_path):
    config = make_recipe(tmp_path)
    wan_nb = Path(sys.executable).parent/'wan-nb'
    r = subprocess.run([str(wan_nb), 'plan', str(config), '--json', str(tmp_path/'plan.json'), '--plot', str(tmp_path/'plan.png')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert '48 items' in r.stdout and 'clip_9.mp4: 32 frames at 16 fps < target 45' in r.stdout
    d = json.loads((tmp_path/'plan.json').read_text())
    assert d['epoch']['items'] == 48 and len(d['fingerprint']) == 16 and (tmp_path/'plan.png').stat().st_size > 1000
    assert set(d['items'][0]) >= {'dataset', 'source', 'start', 'frames', 'width', 'height', 'split', 'repeats', 'caption'}
    assert set(d['dropped'][0]) == {'dataset', 'source', 'target_frames', 'reason'}
    bad = subprocess.run([str(wan_nb), 'plan', str(tmp_path/'nope.toml')], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and 'nope.toml: no such config file' in bad.stderr
