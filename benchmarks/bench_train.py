"""Training speed: time per optimizer step of the engine (`Trainer`) vs a bare PyTorch loop doing the same forward,
backward, gradient clipping and AdamW step on the same model (the same peft LoRA) and a batch of the same shape, and
the time each engine step waits for its data. Prints JSON. Targets: engine/bare <= 1.05, data wait under 2% of a step.

The data: the demo clips' 13-frame heads at exactly 64x32 (no buckets, so every batch has one shape), batches of 2.

The engine's step time is the time between the ends of two consecutive optimizer steps (everything: loading,
noise and timesteps, forward, backward, clipping, optimizer, LR schedule, the loss gather, the event, the event
log and the progress bar); checkpoints are off. `engine_in_memory` is the same engine served its batches from memory
instead of the cache files: the difference is what reading the cache costs (the bare loop reuses one batch). Engine and bare runs alternate in rounds, so that load from other
processes on the machine hits both alike; each round drops its first steps (warm-up); the figures are medians.

Usage: python benchmarks/bench_train.py [--threads 1] [--steps 40] [--rounds 3] [--warmup 5] [--batch-size 2]
"""
import argparse, dataclasses, json, statistics, tempfile, time
from pathlib import Path

import diffusers, transformers
import torch

from wan_nb.demo_data import make_demo_data
from wan_nb.models import load_wan, make_tiny_model
import wan_nb.train as train_module
from wan_nb.train import (Callback, RunConfig, Trainer, add_lora, epoch_batches, load_batch, noisy_input, sample_timesteps,
                          transformer_timestep)

diffusers.utils.logging.disable_progress_bar(); transformers.utils.logging.disable_progress_bar()

DATASET = """[general]
caption_extension = ".txt"
enable_bucket = false
batch_size = {batch_size}

[[datasets]]
video_directory = "{videos}"
cache_directory = "{cache}"
resolution = [64, 32]
frame_extraction = "head"
target_frames = [13]
"""


class StepClock(Callback):
    "Callback: the time of each step's end, each step's data wait and batch size."
    def __init__(self): self.ends, self.waits, self.sizes = [], [], []
    def on_step_end(self, trainer, event):
        self.ends.append(time.perf_counter()); self.waits.append(event.data_wait_s); self.sizes.append(len(event.timesteps))


def engine_round(cfg: RunConfig, warmup: int, progress: bool, batch_size: int, preloaded: dict | None = None) -> tuple[list[float], list[float]]:
    """Step times and data waits of one engine run: the first `warmup` steps dropped, and the epochs' last, smaller batches.
    `preloaded`: {(epoch, index): batch} that the engine gets instead of reading the cache (to separate loading from the rest)."""
    clock = StepClock()
    real = train_module.load_batch
    if preloaded is not None: train_module.load_batch = lambda batch, plan, seed, epoch, index, preservation=False: preloaded[epoch, index]
    try: Trainer(cfg, callbacks=[clock], progress=progress).train()
    finally: train_module.load_batch = real
    steps = [(b - a, w) for a, b, w, n in zip(clock.ends, clock.ends[1:], clock.waits[1:], clock.sizes[1:]) if n == batch_size]
    return [s for s, _ in steps[warmup:]], [w for _, w in steps[warmup:]]  # step k: from the end of step k-1 to the end of step k


def bare_round(cfg: RunConfig, batch: dict, steps: int, warmup: int) -> list[float]:
    "Step times of a bare loop: the same model, LoRA, optimizer, clipping and batch; no accelerate, no data loading, no events."
    model = load_wan(cfg.model, components=('transformer',)).transformer
    params = add_lora(model, cfg)
    model.train()
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=cfg.adam_betas, eps=cfg.adam_eps)
    g = torch.Generator().manual_seed(cfg.seed)
    x0, text = batch['latents'], batch['text']
    times, t0 = [], time.perf_counter()
    for _ in range(steps):
        t = sample_timesteps(cfg, len(x0), g)
        noise = torch.randn(x0.shape, generator=g)
        xt, target = noisy_input(x0, noise, t)
        pred = model(hidden_states=xt, timestep=transformer_timestep(t), encoder_hidden_states=text, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred.float(), target.float())
        loss.backward()
        if cfg.max_grad_norm: torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step(); opt.zero_grad(set_to_none=True)
        loss.item()
        t1 = time.perf_counter(); times.append(t1 - t0); t0 = t1
    return times[warmup:]


def main(threads: int, steps: int, rounds: int, warmup: int, batch_size: int, max_grad_norm: float, progress: bool) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model, demo = make_tiny_model(d/'tiny-wan'), make_demo_data(d/'demo')
        config = d/'dataset.toml'
        config.write_text(DATASET.format(batch_size=batch_size, videos=demo/'videos', cache=d/'cache'))
        cfg = RunConfig(model=str(model), dataset=str(config), output_dir=str(d/'run'), rank=8, learning_rate=1e-4,
                        timestep_sampling='uniform', max_grad_norm=max_grad_norm, max_train_steps=steps + warmup + 1,
                        checkpoint_every_n_steps=None)
        # cache the data once, outside the timing
        first = Trainer(dataclasses.replace(cfg, max_train_steps=1), progress=False)
        first._check_model()
        first._setup_data()
        full = next(b for b in epoch_batches(first.index.entries, first.plan, cfg.seed, 0) if len(b) == batch_size)
        batch = load_batch(full, first.plan, cfg.seed, 0, 0)
        per_epoch = len(epoch_batches(first.index.entries, first.plan, cfg.seed, 0))
        preloaded = {(ep, i): load_batch(bb, first.plan, cfg.seed, ep, i) for ep in range(cfg.max_train_steps // per_epoch + 1)
                     for i, bb in enumerate(epoch_batches(first.index.entries, first.plan, cfg.seed, ep))}
        engine, waits, in_memory, bare = [], [], [], []
        for r in range(rounds):
            s, w = engine_round(dataclasses.replace(cfg, output_dir=str(d/f'run{r}')), warmup, progress, batch_size)
            engine += s; waits += w
            in_memory += engine_round(dataclasses.replace(cfg, output_dir=str(d/f'mem{r}')), warmup, progress, batch_size, preloaded)[0]
            bare += bare_round(cfg, batch, steps + warmup, warmup)
    e, m, b, w = statistics.median(engine), statistics.median(in_memory), statistics.median(bare), statistics.median(waits)
    return dict(threads=threads, rounds=rounds, steps_per_round=steps, warmup=warmup, batch=list(batch['latents'].shape), rank=cfg.rank,
                max_grad_norm=max_grad_norm, progress_bar=progress, engine_steps=len(engine), bare_steps=len(bare),
                engine_step_ms=round(1000 * e, 2), bare_step_ms=round(1000 * b, 2), engine_over_bare=round(e / b, 4),
                engine_over_bare_target=1.05, engine_in_memory_step_ms=round(1000 * m, 2), engine_in_memory_over_bare=round(m / b, 4), data_wait_ms_median=round(1000 * w, 3), data_wait_ms_max=round(1000 * max(waits), 3),
                data_wait_share=round(w / e, 5), data_wait_share_mean=round(statistics.mean(waits) / statistics.mean(engine), 5),
                data_wait_share_target=0.02)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--steps', type=int, default=40, help='timed steps per round')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--warmup', type=int, default=5, help='steps dropped at the start of each round')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--max-grad-norm', type=float, default=RunConfig.max_grad_norm, help='clipping in both loops (0: none)')
    p.add_argument('--progress', action=argparse.BooleanOptionalAction, default=True, help='the engine shows its progress bar')
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
