"""Two processes caching one dataset at once (a sweep with --parallel 2) both finish, every entry verifies, and no
entry is encoded by both; when one of them is killed, the other takes over its claims and finishes the cache."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from wan_nb.cache import cache_index, model_cache_index, verify_cache
from wan_nb.plan import plan_dataset

# `wan-nb cache` with every VAE call slowed by 50 ms, so that the two runs overlap on any machine
SLOW_CACHE = ("import sys, time, wan_nb.cache as c; encode = c.encode_latents; "
              "c.encode_latents = lambda frames, vae: (time.sleep(0.05), encode(frames, vae))[1]; "
              "from wan_nb.cli import main; sys.exit(main(sys.argv[1:]))")


def start(config, model, report):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.Popen([sys.executable, '-c', SLOW_CACHE, 'cache', str(config), '--model', str(model),
                             '--json', str(report)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)


def demo_copy(demo_dir, tmp_path):
    shutil.copytree(demo_dir, tmp_path/'demo', ignore=shutil.ignore_patterns('cache'))
    config = tmp_path/'demo'/'heads.toml'  # one dataset of the demo: ~50 latents, ~25 captions
    config.write_text('[[datasets]]\nvideo_directory = "videos"\ncache_directory = "cache/videos_head_64x32"\n'
                      'resolution = [64, 32]\nframe_extraction = "head"\ntarget_frames = [1, 13]\n')
    return config, cache_index(plan_dataset(config, progress=False), 'vae', 'text')  # counts only


def test_two_runs_share_the_work(tiny_model_dir, demo_dir, tmp_path):
    config, index = demo_copy(demo_dir, tmp_path)
    runs = [start(config, tiny_model_dir, tmp_path/f'report{i}.json') for i in range(2)]
    for r in runs: assert r.wait(timeout=240) == 0, r.stderr.read()[-2000:]
    reports = [json.loads((tmp_path/f'report{i}.json').read_text()) for i in range(2)]
    print(*[{k: r[k] for k in ('latents', 'texts', 'by_others')} for r in reports], sep='\n')
    for kind, total in (('latents', len(index.latents)), ('texts', len(index.texts))):
        assert sum(r[kind]['encoded'] for r in reports) == total  # each entry encoded once, by one of them
        for r in reports: assert r[kind]['encoded'] + r[kind]['reused'] == total and r[kind]['failed'] == 0
    assert all(r['latents']['encoded'] > 0 for r in reports)  # they did run at once, and split the work
    assert verify_cache(model_cache_index(plan_dataset(config, progress=False), tiny_model_dir), progress=False) == []
    assert not list((tmp_path/'demo'/'cache').rglob('.*'))  # no claim or temporary left


def test_a_killed_run_leaves_its_entries_to_the_other(tiny_model_dir, demo_dir, tmp_path):
    config, index = demo_copy(demo_dir, tmp_path)
    first = start(config, tiny_model_dir, tmp_path/'first.json')
    latents = tmp_path/'demo'/'cache'/'videos_head_64x32'/'latents'
    deadline = time.time() + 120
    while time.time() < deadline and sum(1 for _ in latents.glob('[!.]*')) < 5:
        assert first.poll() is None, 'the first run ended before it could be killed'
        time.sleep(0.05)
    second = start(config, tiny_model_dir, tmp_path/'second.json')
    time.sleep(2.0)
    os.kill(first.pid, signal.SIGKILL)  # holding claims: the kernel lets go of them
    first.wait()
    assert second.wait(timeout=240) == 0, second.stderr.read()[-2000:]
    report = json.loads((tmp_path/'second.json').read_text())
    print(report['latents'], report['texts'], report['by_others'])
    assert report['latents']['encoded'] + report['latents']['reused'] == len(index.latents)
    assert report['latents']['encoded'] > 0 and report['latents']['failed'] == 0
    assert verify_cache(model_cache_index(plan_dataset(config, progress=False), tiny_model_dir), progress=False) == []
