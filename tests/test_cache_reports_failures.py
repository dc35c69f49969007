"""Bad input during caching is recorded with its reason, the rest is cached, and the command exits non-zero."""
import contextlib
import io
import shutil


import wan_nb.cache
from wan_nb.cache import build_cache
from wan_nb.cli import cache_command
from wan_nb.plan import plan_dataset

CONFIG = '[[datasets]]\nvideo_directory = "videos"\ncache_directory = "cache"\nresolution = [64, 32]\ntarget_frames = [1, 13]\n'


def small_demo(demo_dir, tmp_path):
    d = tmp_path/'demo'
    (d/'videos').mkdir(parents=True)
    for i in range(4):
        for ext in ('mp4', 'txt'): shutil.copy(demo_dir/'videos'/f'clip_{i:02d}.{ext}', d/'videos'/f'clip_{i:02d}.{ext}')
    (d/'dataset.toml').write_text(CONFIG)
    return d


def test_clip_that_changed_after_planning_fails_alone(tiny_model_dir, demo_dir, tmp_path):
    d = small_demo(demo_dir, tmp_path)
    plan = plan_dataset(d/'dataset.toml', progress=False)
    shutil.copy(demo_dir/'videos'/'clip_10.mp4', d/'videos'/'clip_01.mp4')  # another clip: its entries would lie
    report = build_cache(plan, tiny_model_dir, progress=False)
    assert report.latents == dict(encoded=len(plan.items) - 2, reused=0, failed=2)  # both windows of clip_01
    assert [f['file'] for f in report.failures] == ['videos/clip_01.mp4'] * 2
    assert all('changed since it was planned' in f['reason'] for f in report.failures)


def test_non_finite_latents_fail_and_the_command_exits_1(tiny_model_dir, demo_dir, tmp_path, monkeypatch):
    d = small_demo(demo_dir, tmp_path)
    encode = wan_nb.cache.encode_latents
    def nan_for_long_windows(frames, vae):
        z = encode(frames, vae)
        return z * float('nan') if frames.shape[1] == 13 else z
    monkeypatch.setattr(wan_nb.cache, 'encode_latents', nan_for_long_windows)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cache_command(d/'dataset.toml', tiny_model_dir, tmp_path/'summary.json', progress=False)
    assert code == 1
    assert out.getvalue().count('FAILED videos/clip_') == 4 and 'non-finite latent' in out.getvalue()
    assert len(list((d/'cache'/'latents').glob('*.safetensors'))) == 4  # the 1-frame heads were cached
