"""How fast is the tiny Wan on one CPU core? Prints JSON.

Measures building and saving it, loading it, generating a 9-frame 64x32 preview (4 UniPC steps), and one LoRA
training step (forward + backward) on a 13-frame 64x32 latent: the shape of the demo's head clips.
Usage: python benchmarks/bench_tiny_model.py [--threads 1] [--repeats 20]
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path

import torch
from peft import LoraConfig

from wan_nb.models import load_wan, make_tiny_model, wan_pipeline


def timed(fn, repeats):
    "Median seconds of `repeats` calls after one warm-up call."
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter(); model_dir = make_tiny_model(Path(d)/'tiny-wan'); build = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in model_dir.rglob('*') if p.is_file())
        t0 = time.perf_counter(); wan = load_wan(model_dir); load = time.perf_counter() - t0
    pipe = wan_pipeline(wan)
    pipe.set_progress_bar_config(disable=True)
    generate = lambda: pipe('a red circle moves from left to right', num_frames=9, height=32, width=64,
                            num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type='pt')
    transformer = wan.transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=['to_q', 'to_k', 'to_v', 'to_out.0', 'ffn.net.0.proj', 'ffn.net.2']))
    transformer.train()
    x0, noise, text = torch.randn(1, 16, 4, 4, 8), torch.randn(1, 16, 4, 4, 8), torch.randn(1, 32, 32)
    def train_step():
        t = torch.rand(1)
        xt = (1 - t) * x0 + t * noise
        pred = transformer(hidden_states=xt, timestep=t * 1000, encoder_hidden_states=text, return_dict=False)[0]
        torch.nn.functional.mse_loss(pred, noise - x0).backward()
    return dict(threads=threads, size_mb=round(size / 1e6, 3), build_and_save_s=round(build, 3), load_s=round(load, 3),
                generate_9_frames_64x32_4_steps_s=round(timed(generate, repeats), 4),
                lora_train_step_13x64x32_s=round(timed(train_step, repeats), 4))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=20)
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
