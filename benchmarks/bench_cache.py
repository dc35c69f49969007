"""Caching the demo dataset with the tiny Wan: cold, again with nothing changed, and after one caption changed; and
the demo clips for the tiny Wan 2.1 I2V model (latents, texts and conditions: first-frame latents and CLIP features),
cold and unchanged. Prints JSON. Target: an unchanged run costs at most 2% of the cold one.

Usage: python benchmarks/bench_cache.py [--threads 1]
"""
import argparse, json, tempfile, time
from pathlib import Path

import torch

from wan_nb.cache import build_cache
from wan_nb.demo_data import demo_inputs, make_demo_data
from wan_nb.media import ProbeCache
from wan_nb.models import make_tiny_model
from wan_nb.plan import plan_dataset


def run(config: Path, model: Path, probes: ProbeCache) -> tuple[float, dict]:
    "Seconds to plan and cache `config`, and the cache report's counts."
    t0 = time.perf_counter()
    report = build_cache(plan_dataset(config, probes, progress=False), model, probes=probes, progress=False)
    return time.perf_counter() - t0, report.summary()


def i2v_case(d: Path, probes: ProbeCache) -> dict:
    "Cold and unchanged caching of the I2V demo (its clips) for the tiny Wan 2.1 I2V model (with its image encoder)."
    inputs = demo_inputs(d, 'i2v-2.1')  # the demo clips in d/demo are there already
    model, config = inputs.model, inputs.dataset
    plan_dataset(config, probes, progress=False)
    cold_s, cold = run(config, model, probes)
    warm_s, warm = run(config, model, probes)
    return dict(variant='i2v-2.1', items=cold['latents']['encoded'], conditions=cold['conditions']['encoded'],
                cold_s=round(cold_s, 2), unchanged_s=round(warm_s, 3), unchanged_over_cold=round(warm_s / cold_s, 4),
                unchanged=dict(latents=warm['latents'], texts=warm['texts'], conditions=warm['conditions']))


def main(threads: int) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        model, demo = make_tiny_model(Path(d)/'tiny-wan'), make_demo_data(Path(d)/'demo')
        config, probes = demo/'dataset.toml', ProbeCache(Path(d)/'probes.json')
        plan_dataset(config, probes, progress=False)  # probe once, so that every run below plans warm
        cold_s, cold = run(config, model, probes)
        warm_s, warm = run(config, model, probes)
        (demo/'videos'/'clip_00.txt').write_text('a red circle moves slowly from left to right')
        caption_s, caption = run(config, model, probes)
        i2v = i2v_case(Path(d), probes)
    return dict(threads=threads, items=cold['latents']['encoded'], texts=cold['texts']['encoded'],
                cold_s=round(cold_s, 2), unchanged_s=round(warm_s, 3), unchanged_over_cold=round(warm_s / cold_s, 4),
                one_caption_changed_s=round(caption_s, 2), one_caption_changed_over_cold=round(caption_s / cold_s, 3),
                unchanged=dict(latents=warm['latents'], texts=warm['texts']),
                one_caption_changed=dict(latents=caption['latents'], texts=caption['texts']), i2v=i2v)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
