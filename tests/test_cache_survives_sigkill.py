"""A caching run killed with SIGKILL halfway leaves no half-written entry, and the next run encodes only what is missing."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from wan_nb.cache import build_cache, cache_index, model_cache_index, verify_cache
from wan_nb.plan import plan_dataset

SLIDING = '''[[datasets]]
video_directory = "videos"
cache_directory = "cache/slide"
resolution = [64, 32]
enable_bucket = true
frame_extraction = "slide"
target_frames = [9]
'''


def test_killed_caching_resumes_without_half_written_entries(tiny_model_dir, demo_dir, tmp_path):
    config = demo_dir/'sliding.toml'  # every 9-frame window of every clip: several hundred entries
    config.write_text(SLIDING)
    plan = plan_dataset(config, progress=False)
    total = len({p for p in cache_index(plan, 'v', 't').latents})
    latents = demo_dir/'cache'/'slide'/'latents'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([str(Path(sys.executable).parent/'wan-nb'), 'cache', str(config), '--model', str(tiny_model_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and (not latents.is_dir() or sum(1 for _ in latents.glob('*.safetensors')) < 20):
        assert proc.poll() is None, 'the caching run ended before it could be killed'
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(latents.glob('[!.]*.safetensors'))
    assert 20 <= len(done) < total, (len(done), total)
    for f in done: assert load_file(f)['latents'].shape[0] == 16  # every visible entry is whole

    report = build_cache(plan, tiny_model_dir, progress=False)
    assert report.latents == dict(encoded=total - len(done), reused=len(done), failed=0)
    index = model_cache_index(plan, tiny_model_dir)
    assert verify_cache(index, progress=False) == []
