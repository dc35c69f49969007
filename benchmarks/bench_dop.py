"""DOP's step-time cost: the engine's optimizer step (`Trainer._optimizer_step`) with `dop_multiplier` 0 and 1 on the same
tiny transformer and batch. Prints JSON: the median step time of each and their ratio (AI Toolkit reports ~2-2.5x).

The model is tiny (2 blocks, dim 64, random weights) but the token counts are real: the latents of a 384x208x45 clip
(16x12x26x48: 3,744 video tokens) and 512 text tokens, as a Wan run at that size sees them, so attention over the
video tokens weighs in the step as it does in a real one. With DOP each step adds a no-grad forward of the base model
and a LoRA forward (and its backward) on the preservation caption. Both settings alternate in rounds, so that load from
other processes hits both alike; each round drops its first steps (warm-up). Beside the wall-clock times, the process's
CPU time per step (`cpu_ms_*`): on a CPU shared with other jobs it is the steadier measure of the work.

Usage: python benchmarks/bench_dop.py [--threads 1] [--steps 5] [--rounds 3] [--warmup 1] [--checkpointing]
"""
import argparse, dataclasses, itertools, json, statistics, tempfile, time
from types import SimpleNamespace

import torch
from diffusers import WanTransformer3DModel

from wan_nb.models import _shipped_config
from wan_nb.train import RunConfig, Trainer, timestep_window

LATENTS, TEXT_TOKENS = (16, 12, 26, 48), 512  # 384x208x45 latents: 12 x 13 x 24 = 3,744 video tokens


def tiny_transformer(seed: int = 0) -> WanTransformer3DModel:
    "Wan 2.1 1.3B's config at dim 64 (4 heads of 16), FFN 128, text dim 32, 2 blocks; random weights."
    torch.manual_seed(seed)
    config = dict(_shipped_config('wan2.1-t2v-1.3b'), num_attention_heads=4, attention_head_dim=16, ffn_dim=128,
                  text_dim=32, num_layers=2)
    return WanTransformer3DModel.from_config(config)


def trainer(cfg: RunConfig) -> Trainer:
    "An engine around the tiny transformer, without a dataset (as bench_gpu builds one)."
    tr = Trainer(cfg, progress=False)
    tr.roles, tr.boundary, tr.batches_per_epoch = ['single'], None, 10**9
    tr.model_info = SimpleNamespace(task='t2v')
    tr.windows = {'single': timestep_window(cfg, None, 'single')}
    tr.prepare_experts({'single': tiny_transformer()})
    return tr


def batch() -> dict:
    "One item: latents, its caption's and its preservation caption's (zero-padded) embeddings."
    g = torch.Generator().manual_seed(0)
    text = lambda: torch.randn(1, TEXT_TOKENS, 32, generator=g)
    return dict(latents=torch.randn(1, *LATENTS, generator=g), text=text(), preservation_text=text())


def step_times(tr: Trainer, data: dict, steps: int, warmup: int) -> tuple[list[tuple[float, float]], object]:
    "(wall, CPU) seconds of each engine step after `warmup` (synchronised on a GPU), and the last step's event."
    sync = torch.cuda.synchronize if tr.device.type == 'cuda' else (lambda: None)
    it, times = itertools.repeat((0, 0, data, 0.0)), []
    for _ in range(steps + warmup):
        sync(); t0, c0 = time.perf_counter(), time.process_time()
        event = tr._optimizer_step(it)
        sync(); times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times[warmup:], event


def main(threads: int, steps: int, rounds: int, warmup: int, checkpointing: bool) -> dict:
    torch.set_num_threads(threads)
    data, times = batch(), {0.0: [], 1.0: []}
    with tempfile.TemporaryDirectory() as d:
        base = RunConfig(model='', rank=16, max_train_steps=10**6, output_dir=d, timestep_sampling='uniform',
                         gradient_checkpointing=checkpointing)
        for _ in range(rounds):
            for m in times:
                t, event = step_times(trainer(dataclasses.replace(base, dop_multiplier=m)), data, steps, warmup)
                times[m] += t
    median = lambda m, k: statistics.median(t[k] for t in times[m])
    (off, on), (off_cpu, on_cpu) = [(median(0.0, k), median(1.0, k)) for k in (0, 1)]
    return dict(device=str(torch.device('cuda' if torch.cuda.is_available() else 'cpu')), threads=threads,
                latents=list(LATENTS), video_tokens=LATENTS[1] * (LATENTS[2] // 2) * (LATENTS[3] // 2),
                text_tokens=TEXT_TOKENS, rank=base.rank, gradient_checkpointing=checkpointing, rounds=rounds,
                steps_per_round=steps, step_ms_without_dop=round(1000 * off, 1), step_ms_with_dop=round(1000 * on, 1),
                dop_over_plain=round(on / off, 3), cpu_ms_without_dop=round(1000 * off_cpu, 1),
                cpu_ms_with_dop=round(1000 * on_cpu, 1), dop_over_plain_cpu=round(on_cpu / off_cpu, 3),
                last_dop_loss=event.dop_loss)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--steps', type=int, default=5, help='timed steps per round and setting')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1, help='steps dropped at the start of each round')
    p.add_argument('--checkpointing', action=argparse.BooleanOptionalAction, default=False,
                   help='per-block gradient checkpointing (on by default in CUDA runs)')
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
