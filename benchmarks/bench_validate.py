"""One stable-validation evaluation vs the bare forward passes it needs, on the tiny Wan and the demo data. Prints JSON.
Target: evaluation / bare <= 1.1.

Usage: python benchmarks/bench_validate.py [--threads 1] [--repeats 5]
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path

import torch

from wan_nb.cache import build_cache, model_cache_index
from wan_nb.demo_data import demo_inputs
from wan_nb.models import load_wan
from wan_nb.plan import plan_dataset
from wan_nb.train import RunConfig, noisy_input, timestep_quantiles, transformer_timestep
from wan_nb.validate import _noise, evaluation_batches, evaluation_sets, stable_validation_loss


def bare(model, groups, timesteps):
    "The same forward passes on inputs prepared beforehand: no loading, no noise generation, no bookkeeping."
    with torch.no_grad():
        for x0, noise, text in groups:
            for t, n in zip(timesteps, noise):
                xt, _ = noisy_input(x0, n, t)
                model(hidden_states=xt, timestep=torch.full((len(x0),), transformer_timestep(t)),
                      encoder_hidden_states=text, return_dict=False)


def main(threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        demo = demo_inputs(Path(d))
        plan = plan_dataset(demo.dataset_val, progress=False)
        build_cache(plan, demo.model, progress=False)
        entries = evaluation_sets(model_cache_index(plan, demo.model).entries)['val']
        timesteps = timestep_quantiles(RunConfig())
        model = load_wan(demo.model, components=('transformer',)).transformer.eval()
        batches = evaluation_batches(entries)  # loaded once per run, as the Validator does
        groups = [(b['latents'], [torch.stack([_noise(e, k, b['latents'].shape[1:]) for e in chunk])
                                  for k in range(len(timesteps))], b['text'])
                  for chunk, b in batches]
        evaluate_s = statistics.median(_time(lambda: stable_validation_loss(model, batches, timesteps))
                                       for _ in range(repeats))
        bare_s = statistics.median(_time(lambda: bare(model, groups, timesteps)) for _ in range(repeats))
    return dict(threads=threads, items=len(entries), timesteps=len(timesteps), forward_passes=len(groups) * len(timesteps),
                evaluation_s=round(evaluate_s, 4), bare_forward_s=round(bare_s, 4),
                evaluation_over_bare=round(evaluate_s / bare_s, 3))


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=5)
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
