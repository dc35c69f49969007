"""GPU benchmark of the 24 GB path (issue 13): the engine's own training step on Wan transformers with real dimensions
and random weights (nothing downloaded). Prints JSON; `--json PATH` writes it too. `--tiny`: the same cases with tiny
shapes (dim 64, 2-4 blocks, 48 tokens) in seconds, on the CPU when there is no GPU (what the tests run).

Each transformer is built on meta and filled block by block on the device in the base dtype with random values (normal
with std 1/sqrt(fan_in) for matrices, ones for norm weights, zeros for biases); a block is quantised as it is made when
the case asks for 8 bits, and a swapped block (or the whole expert that waits) moves to pinned CPU memory at once, so
the bf16 14B never sits on the GPU whole. `Trainer(cfg).prepare_experts(...)` then adds the LoRA (rank 32, all
targets, AdamW), checkpointing, BlockSwap and the expert trade, and `Trainer._optimizer_step` is timed after warm-up
(synchronised). Cases, each on its own (one failure leaves the others), skipped once `--budget-s` has passed:
- `1.3b`: Wan 2.1 1.3B (30 blocks, bf16) at 480x832x81: s/step, peak GPU memory, MFU, engine/bare.
- `14b_bf16`, `14b_fp8`, `14b_int8`: Wan 2.1 14B (40 blocks) at 384x208x45 with the GPU capped at 24 GiB
  (`torch.cuda.set_per_process_memory_fraction`, set after the build's memory is freed): bf16 resident (expected not
  to fit: the OutOfMemoryError is reported), fp8 / int8 with the smallest blocks_to_swap that fits (from the memory
  plan's suggestion up, one block at a time on OOM, one probe below when the first try fits).
- `14b_fp8_resident`: fp8, every block on the GPU, no cap: `swapped_over_resident` = fp8 swapped s/step / this
  (when the search found that fp8 fits with no block swapped, an extra fp8 run with `--ratio-swap` (10, as in the
  seed run) blocks swapped under the cap is the swapped side).
- `a14b_fp8`: Wan 2.2 A14B shapes, both experts (fp8, 24 GiB cap, expert_switch_every 2): one switch's cost and
  the steady step time.
Beside each measured peak: the memory plan's prediction (`wan_nb.fit.memory_plan`; with --tiny, the same terms on the
tiny shapes) and measured/predicted.

FLOP count (MFU): per block forward, with L video tokens, Lt = 512 text tokens, d = dim, f = FFN dim:
  self-attention q,k,v,o 4*2*L*d^2 + cross-attention q,o 2*2*L*d^2 + cross-attention k,v 2*2*Lt*d^2
  + FFN 2*2*L*d*f + self-attention scores and values 2*2*L^2*d + cross-attention 2*2*L*Lt*d;
  x blocks x batch; x3 for forward plus backward (the checkpointing recompute and the LoRA are not counted).
MFU = that / (s/step) / peak dense bf16 FLOP/s (`--peak-tflops`, 989 for H100/H200 SXM).
engine/bare: the engine's step over the same step written plainly on the same model object with its LoRA (the
forward under torch.autocast bf16, mse loss, backward, clip_grad_norm_, torch AdamW; no accelerate, no hooks beyond
checkpointing).

Usage: python benchmarks/bench_gpu.py [--json F] [--peak-tflops 989] [--budget-s 420]
       OMP_NUM_THREADS=1 python benchmarks/bench_gpu.py --tiny [--json F]
"""
import argparse, gc, itertools, json, math, re, sys, time, traceback
from types import SimpleNamespace
START = time.perf_counter()  # the time budget counts the imports too

import torch

from accelerate import init_empty_weights
from diffusers import WanTransformer3DModel

from wan_nb.fit import (activation_bytes, bucket_plan, bucket_row, lora_bytes, memory_options, memory_plan,
                        shapes_from_config, suggest, usable_gb, weight_bytes)
from wan_nb.models import _shipped_config, model_task
from wan_nb.quant import quantize_linears
from wan_nb.train import RunConfig, Trainer, timestep_window, weights_dtype

GiB = 2**30
CAP_GIB = 24
TEXT_TOKENS = 512
A14B_BOUNDARY = 0.875  # wan_nb.models.WAN_VARIANTS: the high-noise expert trains t >= 0.875


def tiny_config(variant: str, blocks: int) -> dict:
    "A tiny transformer config derived from `variant`'s: dim 64 (4 heads of 16), FFN 128, text 32, `blocks` blocks."
    return dict(_shipped_config(variant), num_attention_heads=4, attention_head_dim=16, ffn_dim=128, text_dim=32,
                num_layers=blocks)


def tokens(latents: tuple) -> int:
    "Video tokens of latents (C, T, H, W) under Wan's 1x2x2 patches."
    _, t, h, w = latents
    return t * (h // 2) * (w // 2)


def step_flops(config: dict, L: int, Lt: int, batch: int = 1) -> float:
    "Forward plus backward FLOPs of one step (the docstring's formula)."
    d, f, n = config['num_attention_heads'] * config['attention_head_dim'], config['ffn_dim'], config['num_layers']
    block = 4 * 2 * L * d * d + 2 * 2 * L * d * d + 2 * 2 * Lt * d * d + 2 * 2 * L * d * f + 2 * 2 * L * L * d \
        + 2 * 2 * L * Lt * d
    return 3 * n * block * batch


# ---- building a transformer with random weights, block by block --------------------------------------------------

def _random(name: str, shape: tuple, dtype, device, g) -> torch.Tensor:
    "A random tensor for parameter `name`: N(0, 1/fan_in) matrices, ones for norm weights, zeros for biases."
    if name == 'bias': return torch.zeros(shape, dtype=dtype, device=device)
    if len(shape) == 1: return torch.ones(shape, dtype=dtype, device=device)
    fan_in = math.prod(shape[1:]) if name == 'weight' else shape[-1]  # scale_shift_table: (1, k, dim)
    return torch.randn(shape, dtype=dtype, device=device, generator=g).mul_(fan_in ** -0.5)


def _host(t: torch.Tensor, pin: bool) -> torch.Tensor:
    "`t` in CPU memory (pinned when `pin`)."
    return torch.empty(t.shape, dtype=t.dtype, pin_memory=pin).copy_(t) if pin else t.to('cpu')


def _fill(module: torch.nn.Module, prefix: str, dtype, device, g, skip: str | None = None):
    "Random values for the meta parameters of `module` (but those under `skip`), on `device`; its buffers there too."
    keep = WanTransformer3DModel._keep_in_fp32_modules or []
    for mname, m in module.named_modules():
        if skip and (mname == skip or mname.startswith(skip + '.')): continue
        for pname, p in list(m._parameters.items()):
            if p is None or not p.is_meta: continue
            full = f'{prefix}{mname}.{pname}'
            dt = torch.float32 if any(k in full.split('.') for k in keep) else dtype
            m._parameters[pname] = torch.nn.Parameter(_random(pname, tuple(p.shape), dt, device, g),
                                                      requires_grad=p.requires_grad)
        for bname, b in list(m._buffers.items()):
            if b is not None: m._buffers[bname] = b.to(device)


def _to_host(module: torch.nn.Module, pin: bool, skip: str | None = None):
    "Every parameter and buffer of `module` (but those under `skip`) into CPU memory."
    for mname, m in module.named_modules():
        if skip and (mname == skip or mname.startswith(skip + '.')): continue
        for group in (m._parameters, m._buffers):
            for t in group.values():
                if t is not None and t.device.type != 'cpu': t.data = _host(t.data, pin)


def build_transformer(config: dict, device: torch.device, dtype: torch.dtype, quantization: str = 'none',
                      host_blocks=(), host_rest: bool = False, seed: int = 0) -> WanTransformer3DModel:
    "Random-weight Wan transformer made block by block on `device`; `host_blocks` (+ rest if `host_rest`) to CPU."
    with init_empty_weights(): model = WanTransformer3DModel.from_config(config)
    g = torch.Generator(device).manual_seed(seed)
    pin, host_blocks = device.type == 'cuda', set(host_blocks)
    _fill(model, '', dtype, device, g, skip='blocks')
    if host_rest: _to_host(model, pin, skip='blocks')
    for k, block in enumerate(model.blocks):
        _fill(block, f'blocks.{k}.', dtype, device, g)
        if quantization != 'none': quantize_linears(block, quantization)
        if k in host_blocks: _to_host(block, pin)
    return model.eval()


# ---- device helpers ----------------------------------------------------------------------------------------------

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def free(device):
    "Collect garbage, return cached GPU (and pinned host) memory, reset the peak."
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        if hasattr(torch._C, '_host_emptyCache'): torch._C._host_emptyCache()
        torch.cuda.reset_peak_memory_stats(device)


def set_cap(device, gib: float | None):
    "Cap what the caching allocator may hold at `gib` GiB (None: the whole card)."
    if device.type != 'cuda': return
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(1.0 if gib is None else min(1.0, gib * GiB / total), device)


def is_oom(e: BaseException) -> bool:
    "An allocation failure under the cap (torch's OutOfMemoryError, or cuBLAS / cuDNN failing to allocate)."
    return isinstance(e, torch.cuda.OutOfMemoryError) or any(
        m in str(e) for m in ('out of memory', 'CUBLAS_STATUS_ALLOC_FAILED', 'CUDNN_STATUS_ALLOC_FAILED'))


def memory(device) -> dict:
    "Peak allocated / reserved GiB since the last reset (None on the CPU)."
    if device.type != 'cuda': return dict(peak_gib=None, peak_reserved_gib=None)
    return dict(peak_gib=round(torch.cuda.max_memory_allocated(device) / GiB, 3),
                peak_reserved_gib=round(torch.cuda.max_memory_reserved(device) / GiB, 3))


# ---- the memory plan's prediction --------------------------------------------------------------------------------

def prediction(cfg: RunConfig, config: dict, latents: tuple, experts: int, gib: float, tiny: bool) -> dict:
    "The memory plan's peak for this run at (w, h, frames) of `latents`, its verdict and suggestion."
    _, t, h, w = latents
    W, H, frames = w * 8, h * 8, (t - 1) * 4 + 1
    if not tiny:
        p = memory_plan(cfg, bucket_plan(W, H, frames, 1), gpu_memory_gb=gib)
        row, fits, sug = p.peak, p.fits, p.suggestion
        terms = dict(weights=row.weights, lora_and_optimizer=row.lora_and_optimizer, activations=row.activations)
        peak = row.peak
    else:  # memory_plan reads shapes from files or model_type; the tiny shapes go through its terms directly
        s = shapes_from_config(config, 'tiny', experts)
        o, usable = memory_options(cfg, s), usable_gb(gib)
        row = bucket_row(s, o, W, H, frames, 1, usable)
        fits, sug = row.fits, suggest(s, o, [(0, W, H, frames, 1)], usable)
        t = tokens(latents)  # unrounded: the tiny model's terms are a few MiB
        terms = dict(weights=weight_bytes(s, o), lora_and_optimizer=lora_bytes(s, o),
                     activations=activation_bytes(s, o, t))
        terms = {k: round(sum(v.values()) / GiB, 6) for k, v in terms.items()}
        peak = round(sum(terms.values()), 6)
    return dict(plan_peak_gib=peak, **{f'plan_{k}_gib': v for k, v in terms.items()},
                plan_fits=fits, plan_suggestion=sug, plan_gpu_gib=round(gib, 1))


def suggested_swap(plan: dict) -> int:
    "blocks_to_swap from the plan's suggestion (0 when the plan fits as it is)."
    m = re.search(r'blocks_to_swap = (\d+)', plan['plan_suggestion'] or '')
    return int(m[1]) if m else 0


# ---- one training configuration ----------------------------------------------------------------------------------

def run_config(args, variant: str, quant: str = 'none', swap: int = 0, switch_every: int = 2) -> RunConfig:
    return RunConfig(model='', model_type=variant, rank=32, targets='all', optimizer='adamw', base_quantization=quant,
                     blocks_to_swap=swap, gradient_checkpointing=True, expert_switch_every=switch_every,
                     max_train_steps=10_000, learning_rate=1e-5, output_dir=args.scratch)


def make_trainer(cfg: RunConfig, experts: dict, boundary: float | None) -> Trainer:
    "A Trainer around `experts` without a dataset: roles, task, windows and epoch length set here, then prepare_experts."
    tr = Trainer(cfg, progress=False)
    tr.roles, tr.boundary = list(experts), boundary
    tr.model_info = SimpleNamespace(task=model_task(next(iter(experts.values())).config))  # what _loss feeds it
    tr.windows = {r: timestep_window(cfg, boundary, r) for r in tr.roles}
    tr.batches_per_epoch = 10**9
    tr.prepare_experts(experts)
    return tr


def batch(latents: tuple, text: tuple, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(latents=torch.randn(1, *latents, generator=g), text=torch.randn(1, *text, generator=g))


def timed_steps(tr: Trainer, data: dict, n: int, device) -> tuple[list[float], list]:
    "Seconds of each of `n` engine steps (synchronised) and their StepEvents."
    it, times, events = itertools.repeat((0, 0, data, 0.0)), [], []
    for _ in range(n):
        sync(device); t0 = time.perf_counter()
        events.append(tr._optimizer_step(it))
        sync(device); times.append(time.perf_counter() - t0)
    return times, events


def train_run(args, device, variant: str, config: dict, latents: tuple, text: tuple, quant: str = 'none',
              swap: int = 0, experts: int = 1, cap_gib: float | None = None, steps: int = 3, bare: bool = False,
              switch_every: int = 2) -> dict:
    "Build, cap, prepare and time one configuration; an OutOfMemoryError gives ok=False and where it happened."
    cfg = run_config(args, variant, quant, swap, switch_every)
    n, roles = config['num_layers'], ['single'] if experts == 1 else ['high', 'low']
    out = dict(base_quantization=quant, blocks_to_swap=swap, blocks=n, cap_gib=cap_gib, tokens=tokens(latents))
    gpu_gib = cap_gib or (torch.cuda.get_device_properties(device).total_memory / GiB if device.type == 'cuda' else 24)
    out.update(prediction(cfg, config, latents, experts, gpu_gib, args.tiny))
    models, tr, phase, t0 = {}, None, 'build', time.perf_counter()
    try:
        for k, role in enumerate(roles):  # the first expert trains first; the other waits in CPU memory
            models[role] = build_transformer(config, device, weights_dtype(cfg), quant,
                                             host_blocks=range(n - swap if k == 0 else 0, n), host_rest=k > 0, seed=k)
        out['base_dtype'] = str(weights_dtype(cfg)).removeprefix('torch.')
        free(device)
        out['build_s'] = round(time.perf_counter() - t0, 2)
        out['weights_on_gpu_gib'] = round(torch.cuda.memory_allocated(device) / GiB, 3) if device.type == 'cuda' else None
        set_cap(device, cap_gib)
        phase = 'prepare_experts'
        tr = make_trainer(cfg, models, A14B_BOUNDARY if experts == 2 else None)
        data = batch(latents, text)
        phase = 'steps'
        times, events = timed_steps(tr, data, args.warmup + steps if experts == 1 else 7, device)
        out.update(ok=True, step_s=[round(s, 4) for s in times], loss=[round(e.loss, 4) for e in events],
                   expert=[e.expert for e in events])
        out.update(memory(device))
        if out['peak_gib'] is not None: out['measured_over_plan'] = round(out['peak_gib'] / out['plan_peak_gib'], 3)
        if experts == 1: out['s_per_step'] = round(sum(times[args.warmup:]) / steps, 4)
        else:  # h h l l h h l: steps 4 and 6 trade experts (warm), 3 and 5 do not; step 2 is the first trade
            out['first_switch_step_s'] = round(times[2], 4)
            out['switch_step_s'] = round((times[4] + times[6]) / 2, 4)
            out['steady_step_s'] = out['s_per_step'] = round((times[3] + times[5]) / 2, 4)
            out['switch_cost_s'] = round(out['switch_step_s'] - out['steady_step_s'], 4)
        if bare:
            out['bare'] = bare_run(args, tr, data, steps, device)
            out['engine_over_bare'] = round(out['s_per_step'] / out['bare']['s_per_step'], 3)
    except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
        if not is_oom(e): raise
        out.update(ok=False, failed_in=phase, error=f'{type(e).__name__}: ' + str(e).split('\n')[0][:300])
        out.update(memory(device))
    finally:
        out['wall_s'] = round(time.perf_counter() - t0, 2)
        tr = None; models.clear()
        set_cap(device, None)
        free(device)
    return out


def bare_run(args, tr: Trainer, data: dict, steps: int, device) -> dict:
    "The same step written plainly on the same model object (LoRA and checkpointing kept, accelerate bypassed)."
    cfg, (role,) = tr.config, tr.experts
    model = tr.accelerator.unwrap_model(tr.experts[role])
    patched = model.__dict__.pop('forward', None)  # accelerate's autocast wrapper around forward
    getattr(tr.optimizer, 'optimizer', tr.optimizer).state.clear()  # the engine's AdamW state is not needed now
    free(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=tuple(cfg.adam_betas),
                            eps=cfg.adam_eps)
    mixed = tr.accelerator.mixed_precision != 'no'
    x0, text, dtype = data['latents'].to(device), data['text'].to(device, tr.dtype), tr.dtype
    s = cfg.discrete_flow_shift
    def step():
        noise = torch.randn_like(x0)
        u = torch.sigmoid(torch.randn(len(x0), device=device))
        t = s * u / (1 + (s - 1) * u)  # the 'shift' timestep distribution, as the engine draws it
        tb = t.view(-1, 1, 1, 1, 1)
        xt, target = (1 - tb) * x0 + tb * noise, noise - x0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
            pred = model(hidden_states=xt.to(dtype), timestep=t * 1000, encoder_hidden_states=text,
                         return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred.float(), target.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step(); opt.zero_grad(set_to_none=True)
        return loss.detach()
    times = []
    try:
        for _ in range(args.warmup + steps):
            sync(device); t0 = time.perf_counter()
            step()
            sync(device); times.append(time.perf_counter() - t0)
    finally:
        if patched is not None: model.forward = patched
    return dict(step_s=[round(x, 4) for x in times], s_per_step=round(sum(times[args.warmup:]) / steps, 4),
                **memory(device))


# ---- the cases ---------------------------------------------------------------------------------------------------

def shapes(args) -> dict:
    "Configs and (latents, text) shapes of the cases: real ones, or tiny ones with --tiny."
    if args.tiny:
        lat, txt = (16, 3, 8, 8), (16, 32)  # 64x64x9 clips: 48 tokens; 16 text tokens of dim 32
        return dict(small=tiny_config('wan2.1-t2v-1.3b', 2), big=tiny_config('wan2.1-t2v-14b', 4),
                    a14b=tiny_config('wan2.2-t2v-a14b', 4), small_data=(lat, txt), big_data=(lat, txt))
    return dict(small=_shipped_config('wan2.1-t2v-1.3b'), big=_shipped_config('wan2.1-t2v-14b'),
                a14b=_shipped_config('wan2.2-t2v-a14b'),
                small_data=((16, 21, 60, 104), (TEXT_TOKENS, 4096)),  # 480x832x81
                big_data=((16, 12, 26, 48), (TEXT_TOKENS, 4096)))  # 384x208x45


def case_13b(args, device, S) -> dict:
    "Wan 2.1 1.3B, bf16, all blocks resident: s/step, peak, MFU and engine/bare."
    lat, txt = S['small_data']
    out = train_run(args, device, 'wan2.1-t2v-1.3b', S['small'], lat, txt, steps=args.steps, bare=True)
    if out.get('ok'):
        flops = step_flops(S['small'], tokens(lat), txt[0])
        sig = lambda x: float(f'{x:.4g}')  # 4 significant digits: the tiny model's numbers are small
        out.update(flops_per_step=flops, tflops_per_s=sig(flops / out['s_per_step'] / 1e12),
                   mfu=sig(flops / out['s_per_step'] / (args.peak_tflops * 1e12)),
                   bare_mfu=sig(flops / out['bare']['s_per_step'] / (args.peak_tflops * 1e12)))
    return out


def case_14b_bf16(args, device, S) -> dict:
    lat, txt = S['big_data']
    return train_run(args, device, 'wan2.1-t2v-14b', S['big'], lat, txt, cap_gib=args.cap, steps=args.steps)


def swap_search(args, device, S, quant: str, variant: str, config: dict, experts: int, clock) -> dict:
    "The smallest blocks_to_swap that fits the cap: from the plan's suggestion (the tiny model: half its blocks) up."
    lat, txt = S['big_data']
    n = config['num_layers']
    plan = prediction(run_config(args, variant, quant), config, lat, experts, args.cap or 24, args.tiny)
    k = n // 2 if args.tiny else min(suggested_swap(plan), n - 1)
    tried, found, probed_below = [], None, False
    while 0 <= k < n:
        if clock() > args.budget_s:
            tried.append(dict(blocks_to_swap=k, skipped=f'time budget ({args.budget_s} s) spent')); break
        r = train_run(args, device, variant, config, lat, txt, quant, k, experts, args.cap, args.steps)
        tried.append(r)
        if r.get('ok'):
            found = r
            if args.tiny or probed_below or k == 0 or len(tried) > 1: break
            probed_below, k = True, k - 1  # the first try fitted: does one block fewer fit too?
        elif found is not None: break  # one fewer does not fit: `found` is the smallest
        else: k += 1
    best = found or tried[-1]
    return dict(best, plan_start_blocks_to_swap=suggested_swap(plan) if not args.tiny else None,
                smallest_verified=bool(found) and (found['blocks_to_swap'] == 0 or any(
                    not t.get('ok') and t.get('blocks_to_swap') == found['blocks_to_swap'] - 1 for t in tried)),
                tries=[{k_: t.get(k_) for k_ in ('blocks_to_swap', 'ok', 'peak_gib', 'plan_peak_gib', 's_per_step',
                                                 'failed_in', 'skipped', 'wall_s')} for t in tried])


def case_14b_resident(args, device, S, swapped: dict | None) -> dict:
    "fp8, every block on the GPU, no cap, against the fp8 swapped run (or a new one at --ratio-swap blocks)."
    lat, txt = S['big_data']
    out = train_run(args, device, 'wan2.1-t2v-14b', S['big'], lat, txt, 'fp8', 0, steps=args.steps)
    if not (swapped and swapped.get('ok') and swapped['blocks_to_swap'] > 0):
        k = min(args.ratio_swap, S['big']['num_layers'] - 1)
        swapped = train_run(args, device, 'wan2.1-t2v-14b', S['big'], lat, txt, 'fp8', k, cap_gib=args.cap,
                            steps=args.steps)
        out['swapped_run'] = {k_: swapped.get(k_) for k_ in ('blocks_to_swap', 'ok', 's_per_step', 'peak_gib',
                                                             'plan_peak_gib', 'measured_over_plan', 'error')}
    if out.get('ok') and swapped.get('ok'):
        out['swapped_blocks'] = swapped['blocks_to_swap']
        out['swapped_over_resident'] = round(swapped['s_per_step'] / out['s_per_step'], 3)
    return out


def targets(res: dict) -> dict:
    "The issue's targets against the measurements (None where a case gave no number)."
    c = res['cases']
    get = lambda case, key: c.get(case, {}).get(key)
    ratios = [r for case in c.values() if isinstance(case, dict) and (r := case.get('measured_over_plan')) is not None]
    return {'mfu_1.3b >= 0.40': get('1.3b', 'mfu'), 'engine_over_bare <= 1.05': get('1.3b', 'engine_over_bare'),
            'swapped_over_resident <= 1.3': get('14b_fp8_resident', 'swapped_over_resident'),
            '14b_fp8 fits 24 GiB': get('14b_fp8', 'ok'),
            'plan within 15% (measured/plan)': {k: v.get('measured_over_plan') for k, v in c.items()
                                                if isinstance(v, dict) and 'measured_over_plan' in v},
            'plan within 15% everywhere': all(abs(r - 1) <= 0.15 for r in ratios) if ratios else None}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tiny', action='store_true', help='tiny shapes (seconds; on the CPU when there is no GPU): every path but CUDA')
    p.add_argument('--json', help='also write the JSON here')
    p.add_argument('--peak-tflops', type=float, default=989.0, help='dense bf16 peak (H100/H200 SXM: 989)')
    p.add_argument('--budget-s', type=float, default=420.0, help='skip the cases left once this many seconds passed')
    p.add_argument('--steps', type=int, default=None, help='timed steps per case (default 3; tiny 2)')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    p.add_argument('--ratio-swap', type=int, default=10,
                   help='blocks swapped for swapped/resident when the fp8 search needs none (the seed run: 10)')
    p.add_argument('--cases', default='1.3b,14b_bf16,14b_fp8,14b_int8,14b_fp8_resident,a14b_fp8')
    p.add_argument('--scratch', default='/tmp/wan-nb-bench-gpu', help='output_dir of the trainers (nothing written)')
    args = p.parse_args(argv)
    args.steps = args.steps or (2 if args.tiny else 3)
    clock = lambda: time.perf_counter() - START
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else torch.device('cpu')
    if device.type == 'cpu' and not args.tiny:
        p.error('no CUDA device here: the real shapes need a GPU; run with --tiny (tiny shapes, seconds on the CPU).')
    args.cap = None if device.type == 'cpu' else CAP_GIB
    S = shapes(args)
    res = dict(device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
               gpu_total_gib=round(torch.cuda.get_device_properties(device).total_memory / GiB, 1)
               if device.type == 'cuda' else None,
               torch=torch.__version__, tiny=args.tiny, cap_gib=args.cap, peak_tflops=args.peak_tflops,
               steps=args.steps, warmup=args.warmup, budget_s=args.budget_s,
               flop_formula='3 x blocks x batch x (4*2*L*d^2 + 2*2*L*d^2 + 2*2*Lt*d^2 + 2*2*L*d*f + 2*2*L^2*d '
                            '+ 2*2*L*Lt*d); L video tokens, Lt text tokens, d dim, f FFN dim; MFU = that / s '
                            'per step / peak_tflops',
               lora='rank 32, all targets, fp32, torch AdamW; gradient checkpointing on', cases={}, skipped=[])
    runners = {
        '1.3b': lambda: case_13b(args, device, S),
        '14b_bf16': lambda: case_14b_bf16(args, device, S),
        '14b_fp8': lambda: swap_search(args, device, S, 'fp8', 'wan2.1-t2v-14b', S['big'], 1, clock),
        '14b_int8': lambda: swap_search(args, device, S, 'int8', 'wan2.1-t2v-14b', S['big'], 1, clock),
        '14b_fp8_resident': lambda: case_14b_resident(args, device, S, res['cases'].get('14b_fp8')),
        'a14b_fp8': lambda: swap_search(args, device, S, 'fp8', 'wan2.2-t2v-a14b', S['a14b'], 2, clock),
    }
    for name in args.cases.split(','):
        if clock() > args.budget_s:
            res['cases'][name] = dict(skipped=f'time budget: {clock():.0f} s elapsed > {args.budget_s:.0f} s')
            res['skipped'].append(name); continue
        t0 = time.perf_counter()
        try: res['cases'][name] = runners[name]()
        except Exception as e:  # one case's failure leaves the others
            res['cases'][name] = dict(ok=False, error=f'{type(e).__name__}: {e}'[:1000],
                                      traceback=traceback.format_exc()[-3000:])
        free(device)  # here, once the failed case's frames are gone
        res['cases'][name]['case_s'] = round(time.perf_counter() - t0, 2)
        print(f'[bench_gpu] {name}: {time.perf_counter() - t0:.1f} s', file=sys.stderr, flush=True)
        res['elapsed_s'] = round(clock(), 1)
        write(args.json, res)  # what is done so far survives a kill
    if args.cases == p.get_default('cases'): res['targets'] = targets(res)
    res['elapsed_s'] = round(clock(), 1)
    print(write(args.json, res))
    return res


def write(path: str | None, res: dict) -> str:
    "The JSON of `res`, also written to `path` when given."
    text = json.dumps(res, indent=1, default=str)
    if path:
        with open(path, 'w') as f: f.write(text + '\n')
    return text


if __name__ == '__main__':
    main()
