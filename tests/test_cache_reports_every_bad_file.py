"""Files damaged after planning (truncated, overwritten, deleted; a clip, a still or a control image) fail only their own
cache entries, each named with its reason in the report and its JSON; every good entry is cached."""
import contextlib
import io
import json
import shutil

import numpy as np
from PIL import Image

from wan_nb.cache import build_cache, model_cache_index
from wan_nb.cli import cache_command
from wan_nb.models import make_tiny_model
from wan_nb.plan import plan_dataset

from damaged_media import corpus, damage, overwrite_keeping_size_and_time


def test_every_good_entry_is_cached_and_every_bad_one_reported(tiny_model_dir, demo_dir, tmp_path):
    plan = plan_dataset(corpus(demo_dir, tmp_path), progress=False)
    bad = damage(tmp_path)
    report = build_cache(plan, tiny_model_dir, device='cpu', progress=False)

    failing = [i for i in plan.items if i.source in bad]
    assert report.latents == dict(encoded=len(plan.items) - len(failing), reused=0, failed=len(failing))
    assert sorted(f['file'] for f in report.failures) == sorted(i.source for i in failing)
    for f in report.failures:
        assert bad[f['file']] in f['reason'] and str(tmp_path/f['file']) in f['reason'], f
    summary = json.loads(json.dumps(report.summary()))
    assert summary['failures'] == report.failures and summary['latents']['failed'] == len(failing)
    assert sum(f"FAILED {name}:" in line for line in repr(report).splitlines() for name in bad) == len(failing)

    index = model_cache_index(plan, tiny_model_dir)
    cached = [e.item.source for e in index.entries if e.latents.is_file()]
    assert sorted(cached) == sorted(i.source for i in plan.items if i.source not in bad)


def test_the_command_caches_the_rest_and_exits_1(tiny_model_dir, demo_dir, tmp_path):
    config = corpus(demo_dir, tmp_path, clips=2, stills=2)
    plan_dataset(config, progress=False)  # planned once: the probes are cached
    overwrite_keeping_size_and_time(tmp_path/'images'/'still_01.jpg')
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cache_command(config, tiny_model_dir, tmp_path/'summary.json', device='cpu', progress=False)
    assert code == 1
    failures = json.loads((tmp_path/'summary.json').read_text())['failures']
    assert [f['file'] for f in failures] == ['images/still_01.jpg'] and 'cannot identify image file' in failures[0]['reason']
    assert 'FAILED images/still_01.jpg: ' in out.getvalue()
    assert len(list((tmp_path/'cache'/'videos'/'latents').glob('*.safetensors'))) == 4  # 2 clips x (1, 13) frames
    assert len(list((tmp_path/'cache'/'images'/'latents').glob('*.safetensors'))) == 1


def test_a_damaged_control_image_fails_only_its_condition(demo_dir, tmp_path):
    model = make_tiny_model(tmp_path/'tiny-i2v', variant='i2v-2.2')
    d = tmp_path/'i2v'
    (d/'videos').mkdir(parents=True); (d/'control').mkdir()
    u, v = np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 32))
    for i in range(2):
        for ext in ('mp4', 'txt'): shutil.copy(demo_dir/'videos'/f'clip_{i:02d}.{ext}', d/'videos')
        Image.fromarray((np.stack([u, v, u * v], -1) * 255 * (i + 1) / 2).astype(np.uint8)).save(d/'control'/f'clip_{i:02d}.png')
    (d/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\ncache_directory = "cache"\n'
                                  'control_directory = "control"\nresolution = [64, 32]\ntarget_frames = [9]\n')
    plan = plan_dataset(d/'dataset.toml', progress=False)
    overwrite_keeping_size_and_time(d/'control'/'clip_01.png')
    report = build_cache(plan, model, device='cpu', progress=False)
    assert report.latents == dict(encoded=2, reused=0, failed=0)
    assert report.conditions == dict(encoded=1, reused=0, failed=1)
    [failure] = report.failures
    assert failure['file'] == str(d/'control'/'clip_01.png')
    assert failure['reason'].startswith(f"the control image of videos/clip_01.mp4: {d/'control'/'clip_01.png'}: ")
    assert 'cannot identify image file' in failure['reason']
