"""GPU check for real checkpoints (issue 12): write a Wan2.1-T2V-1.3B-shaped transformer (30 blocks, dim 1536,
random bf16 weights) as a ComfyUI-style single file, load it with `load_wan(..., dtype=bf16, device='cuda')`,
report the load time, peak GPU memory and the parameters' dtypes, then add a rank-16 LoRA (peft; fp32 LoRA
parameters on the bf16 base) and run one flow-matching training step with gradient checkpointing on random
latents and text. Prints JSON.

`--tiny` runs the same on the CPU with 1 block and small latents, so that the script is tested without a GPU.
It imports only wan_nb.models (and torch, diffusers, peft, safetensors, accelerate): no PyAV, no MLflow.
Usage: python benchmarks/gpu_check.py [--tiny] [--frames 21 --height 60 --width 104]   (latent sizes)
"""
import argparse, json, sys, tempfile, time
from collections import Counter
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import WanTransformer3DModel
from peft import LoraConfig
from safetensors.torch import save_file

from wan_nb.models import _original_name, _shipped_config, identify_model, load_wan


def write_comfy_transformer(path: Path, blocks: int, seed: int = 0) -> float:
    "Random bf16 weights of the 1.3B release's shapes (cut to `blocks`) under ComfyUI's key names; returns GB."
    with init_empty_weights():
        meta = WanTransformer3DModel.from_config({**_shipped_config('wan2.1-t2v-1.3b'), 'num_layers': blocks})
    g = torch.Generator().manual_seed(seed)
    sd = {'model.diffusion_model.' + _original_name(k): (torch.randn(v.shape, generator=g) * 0.02).to(torch.bfloat16)
          for k, v in meta.state_dict().items()}
    save_file(sd, path)
    return sum(v.numel() * 2 for v in sd.values()) / 1e9


def peak_gb(device) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 1e9, 3) if device.type == 'cuda' else None


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def main(tiny: bool, frames: int, height: int, width: int, rank: int = 16) -> dict:
    device = torch.device('cpu' if tiny else 'cuda')
    blocks = 1 if tiny else 30
    out = dict(device=torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu', torch=torch.__version__)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d)/'wan2.1_t2v_1.3B_bf16.safetensors'
        out['file_gb'] = round(write_comfy_transformer(f, blocks), 3)
        info = identify_model(f)
        out['identified'] = dict(variant=info.variant, blocks=info.blocks, format=info.format, dtype=info.dtype)
        if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        tf = load_wan(f, ('transformer',), dtype=torch.bfloat16, device=device).transformer
        sync(device)
        out['load_seconds'] = round(time.perf_counter() - t0, 3)
    out['load_peak_gpu_gb'] = peak_gb(device)
    out['param_dtypes'] = dict(Counter(str(p.dtype) for p in tf.parameters()))
    out['param_count'] = sum(p.numel() for p in tf.parameters())

    tf.requires_grad_(False)
    tf.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True,
                              target_modules=['to_q', 'to_k', 'to_v', 'to_out.0', 'ffn.net.0.proj', 'ffn.net.2']))
    lora = [p for n, p in tf.named_parameters() if 'lora_' in n]
    for p in lora:
        p.data = p.data.float()  # fp32 masters on the bf16 base
        p.requires_grad_(True)
    out['lora'] = dict(rank=rank, params=sum(p.numel() for p in lora), dtypes=sorted({str(p.dtype) for p in lora}))
    tf.enable_gradient_checkpointing()
    tf.train()
    opt = torch.optim.AdamW(lora, lr=1e-4)

    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 16, frames, height, width, generator=g)
    noise, t = torch.randn(x0.shape, generator=g), torch.rand(1, generator=g)
    xt, target = (1 - t) * x0 + t * noise, noise - x0
    text = torch.randn(1, 512, 4096, generator=g) * 0.1
    bf = dict(device=device, dtype=torch.bfloat16)
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    pred = tf(xt.to(**bf), (t * 1000).to(device), text.to(**bf), return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(pred.float(), target.to(device))
    loss.backward()
    grads_finite = all(p.grad is not None and torch.isfinite(p.grad).all() for p in lora)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync(device)
    out['step'] = dict(latents=list(x0.shape), tokens=frames * height * width // 4, seconds=round(time.perf_counter() - t0, 3),
                       peak_gpu_gb=peak_gb(device), loss=round(loss.item(), 5), lora_grads_finite=grads_finite)
    out['base_weights_bf16_after_step'] = all(p.dtype == torch.bfloat16 for n, p in tf.named_parameters()
                                              if 'lora_' not in n and n.endswith('to_q.base_layer.weight'))
    out['imported'] = {m: m in sys.modules for m in ('av', 'mlflow', 'wan_nb.media', 'wan_nb.train')}
    return out


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tiny', action='store_true', help='CPU, 1 block, small latents (a test of this script)')
    p.add_argument('--frames', type=int, default=None, help='latent frames (21 = 81 video frames)')
    p.add_argument('--height', type=int, default=None, help='latent height (60 = 480 px)')
    p.add_argument('--width', type=int, default=None, help='latent width (104 = 832 px)')
    a = p.parse_args()
    size = (2, 8, 8) if a.tiny else (21, 60, 104)
    print(json.dumps(main(a.tiny, a.frames or size[0], a.height or size[1], a.width or size[2]), indent=1))
