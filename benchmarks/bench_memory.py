"""The memory plan's weight, LoRA and activation terms against measured allocations on the CPU, and its predictions
for the 24 GB issue's GPU configurations. Prints JSON.

A Wan transformer with real 1.3B dimensions (dim 1536, FFN 8960, 12 heads, text 4096) but 2 blocks, bf16 base weights,
LoRA rank 32 on all targets in fp32, gradient checkpointing, bf16 autocast: one forward and backward per token count.
Measured: the peak of live tensor storage bytes created during the step (a TorchDispatchMode that tracks each new
storage until a weakref finalizer sees it freed), the frozen weights' bytes, and the LoRA's bytes after an AdamW step.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_memory.py [--tokens 1560 6240]
"""
import argparse, json, time, weakref
from dataclasses import replace

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from wan_nb.fit import (activation_bytes, bucket_plan, lora_bytes, memory_options, memory_plan, shapes_from_config,
                        weight_bytes)
from wan_nb.models import _shipped_config
from wan_nb.offload import enable_checkpointing
from wan_nb.train import RunConfig, add_lora

LATENTS = {1560: (5, 24, 52), 6240: (5, 48, 104), 390: (5, 12, 26)}  # (T, H, W) latent sizes of each token count


class LiveBytes(TorchDispatchMode):
    "Live bytes of the storages created under the mode (not those in `known`), and their peak."
    def __init__(self, known: set):
        super().__init__(); self.known, self.live, self.now, self.peak = known, {}, 0, 0

    def _free(self, key): self.now -= self.live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor): continue
            st = t.untyped_storage(); key = st.data_ptr()
            if key in self.live or key in self.known or st.nbytes() == 0: continue
            self.live[key] = st.nbytes(); self.now += st.nbytes(); self.peak = max(self.peak, self.now)
            weakref.finalize(st, self._free, key)
        return out


def build(blocks: int = 2, quantization: str = 'none'):
    "A 1.3B-dimension Wan transformer with `blocks` blocks, bf16 (diffusers' fp32 modules kept fp32), LoRA r32."
    from diffusers import WanTransformer3DModel
    c = {k: v for k, v in _shipped_config('wan2.1-t2v-1.3b').items() if not k.startswith('_')}
    torch.manual_seed(0)
    m = WanTransformer3DModel(**dict(c, num_layers=blocks)).to(torch.bfloat16)
    for name, mod in m.named_modules():
        if any(k in name.split('.') for k in m._keep_in_fp32_modules): mod.float()
    for name, p in m.named_parameters():
        if name.endswith('scale_shift_table'): p.data = p.data.float()
    if quantization != 'none':
        from wan_nb.quant import quantize_linears
        for block in m.blocks: quantize_linears(block, quantization)
    cfg = RunConfig(model='/none', model_type='wan2.1-t2v-1.3b', rank=32, targets='all', gradient_checkpointing=True,
                    base_quantization=quantization)
    params = add_lora(m, cfg)
    enable_checkpointing(m, offload=False)  # as the Trainer does
    return m.train(), params, cfg


def measure(m, params, tokens: int) -> dict:
    "Peak activation bytes of one forward and backward at `tokens` tokens, and the time it took."
    shape = LATENTS[tokens]
    x, target = torch.randn(1, 16, *shape, dtype=torch.bfloat16), torch.randn(1, 16, *shape)
    text, t = torch.randn(1, 512, 4096, dtype=torch.bfloat16), torch.tensor([500.0])
    known = {v.untyped_storage().data_ptr() for v in [*m.parameters(), *m.buffers(), x, target, text, t]}
    for p in params: p.grad = None
    t0 = time.perf_counter()
    with LiveBytes(known) as live:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            pred = m(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
        torch.nn.functional.mse_loss(pred.float(), target.float()).backward()
    return dict(peak=live.peak, seconds=round(time.perf_counter() - t0, 1))


def lora_measured(params) -> int:
    "Bytes of the LoRA weights, their gradients and AdamW's state after one step."
    opt = torch.optim.AdamW(params, lr=1e-4)
    for p in params: p.grad = torch.zeros_like(p)
    opt.step()
    state = sum(v.nbytes for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim())
    return sum(p.nbytes + p.grad.nbytes for p in params) + state


def validate(tokens: list[int], quantization: str = 'none') -> dict:
    m, params, cfg = build(2, quantization)
    s = shapes_from_config(dict(_shipped_config('wan2.1-t2v-1.3b'), num_layers=2), 'wan2.1-t2v-1.3b')
    o = memory_options(cfg, s)
    frozen = sum(p.nbytes for p in m.parameters() if not p.requires_grad) + sum(b.nbytes for b in m.buffers())
    out = dict(weights=dict(measured_mb=round(frozen / 1e6, 1), plan_mb=round(sum(weight_bytes(s, o).values()) / 1e6, 1)),
               lora_and_optimizer=dict(measured_mb=round(lora_measured(params) / 1e6, 1),
                                       plan_mb=round(sum(lora_bytes(s, o).values()) / 1e6, 1)))
    for k in ('weights', 'lora_and_optimizer'): out[k]['ratio'] = round(out[k]['plan_mb'] / out[k]['measured_mb'], 3)
    for n in tokens:
        got, plan = measure(m, params, n), activation_bytes(s, o, n)
        out[f'activations_{n}_tokens'] = dict(measured_mb=round(got['peak'] / 1e6, 1),
                                              plan_mb=round(sum(plan.values()) / 1e6, 1),
                                              ratio=round(sum(plan.values()) / got['peak'], 3),
                                              terms_mb={k: round(v / 1e6, 1) for k, v in plan.items()},
                                              seconds=got['seconds'])
    out['within_15_percent'] = all(abs(v['ratio'] - 1) <= 0.15 for v in out.values() if isinstance(v, dict))
    return out


def validate_all(tokens: list[int]) -> dict:
    "bf16 base at each token count; 8-bit (int8, fp8) blocks at the smallest."
    out = dict(bf16=validate(tokens))
    for q in ('int8', 'fp8'): out[q] = validate(tokens[:1], q)
    out['within_15_percent'] = all(v['within_15_percent'] for v in out.values())
    return out


def _row(p) -> dict:
    r = p.peak
    return dict(peak_gib=r.peak, weights_gib=r.weights, lora_and_optimizer_gib=r.lora_and_optimizer,
                activations_gib=r.activations, tokens=r.tokens, fits=p.fits, suggestion=p.suggestion)


def smallest_swap(cfg: RunConfig, plan, gb: float) -> tuple[int | None, object]:
    "The fewest blocks_to_swap with which `cfg` fits `gb` GiB, and its plan."
    for k in range(0, 40):
        p = memory_plan(replace(cfg, blocks_to_swap=k), plan, gb)
        if p.fits: return k, p
    return None, p


def predictions() -> dict:
    "The plan's predictions for the issue's GPU configurations (shapes from model_type: no files needed)."
    out = {}
    c13 = RunConfig(model='/none', model_type='wan2.1-t2v-1.3b', rank=32, targets='all', gradient_checkpointing=True)
    out['1.3b_480x832x81_bf16_r32'] = _row(memory_plan(c13, bucket_plan(832, 480, 81), 141))
    c14 = RunConfig(model='/none', model_type='wan2.1-t2v-14b', rank=32, targets='all', optimizer='adamw8bit')
    small = bucket_plan(384, 208, 45)
    out['14b_384x208x45_bf16_resident_24gb'] = _row(memory_plan(c14, small, 24))
    out['14b_384x208x45_bf16_resident_uncapped'] = _row(memory_plan(c14, small, 141))
    for q in ('fp8', 'int8'):
        k, p = smallest_swap(replace(c14, base_quantization=q), small, 24)
        out[f'14b_384x208x45_{q}_24gb'] = dict(_row(p), blocks_to_swap=k)
    k, p = smallest_swap(replace(c14, model_type='wan2.2-t2v-a14b'), small, 24)
    out['a14b_both_experts_384x208x45_bf16_24gb'] = dict(_row(p), blocks_to_swap=k)
    k, p = smallest_swap(replace(c14, model_type='wan2.2-t2v-a14b', base_quantization='fp8'), small, 24)
    out['a14b_both_experts_384x208x45_fp8_24gb'] = dict(_row(p), blocks_to_swap=k)
    return out


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--tokens', type=int, nargs='+', default=[1560, 6240], choices=sorted(LATENTS))
    a = ap.parse_args()
    print(json.dumps(dict(validation=validate_all(a.tokens), predictions=predictions()), indent=1))
