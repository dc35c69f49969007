"""How fast is `wan-nb slider` on two Wan2.1-14B-sized LoRAs, against the dense SVD public scripts run? Prints JSON.

Builds two rank-16 bf16 LoRAs on the 400 block layers of Wan2.1-T2V-14B (40 blocks x 10 layers, dim 5120, ffn
13824) whose factors are correlated (B's are A's plus a change, as two anchors trained on nearly the same data),
saves them (one with musubi keys, one with ComfyUI keys), then times in a fresh process what `wan-nb slider A B -o OUT
--rank 4` runs (`make_slider`: read both, reduce, write) and its resident memory before the call and at its peak
during it (Linux: /proc/self/status, peak reset after the imports). For scale it also times reading the two inputs
and writing a rank-4 output alone (the I/O floor; target: the slider at most 1.5x it) and the whole `wan-nb slider`
command as a process against `python -c "import torch"` (target: at most 0.5 s more). Every time is the median of
--repeats runs (the in-process one over as many fresh processes). The dense route runs on a sample of layers (form
the delta, full SVD with `torch.linalg.svd`), extrapolated to all 400 layers, and its error is compared with ours
(--dense-sample 0 skips it). Last, how exact the slider is: computed in fp32, against the exact best rank-4
approximation of every layer's difference (QRs of the stacked factors and SVD of the core, all in fp64), as the
largest relative Frobenius difference (target: 1e-6). And what any exact fp32 route must do at least, timed alone
on the same threads: convert the bf16 factors to fp32 and form their Gram matrices (the least arithmetic: 9.8 GFLOP).
Usage: python benchmarks/bench_slider.py [--threads 2] [--dense-sample 1] [--repeats 3]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from wan_nb.lora_io import Lora, LoraModule, random_lora, read_lora, wan_shapes, write_lora
from wan_nb.slider import _BATCH_VALUES, _batches, _stack_factors, _torch_threads, slider_lora

BLOCKS, DIM, FFN, RANK, OUT_RANK = 40, 5120, 13824, 16, 4

MEMORY = """
def rss_mb(field):
    "VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."
    line = next(l for l in open('/proc/self/status') if l.startswith(field))
    return int(line.split()[1]) / 1024
def reset_peak():
    open('/proc/self/clear_refs', 'w').write('5')  # Linux: VmHWM restarts from the current RSS
"""

CHILD = MEMORY + """
import json, time
t0 = time.perf_counter()
import torch; torch.set_num_threads({threads})
from wan_nb.slider import make_slider
t1 = time.perf_counter()
before = rss_mb('VmRSS'); reset_peak()
summary = make_slider({a!r}, {b!r}, {out!r}, rank={rank})
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, slider_s=t2 - t1, rss_before_mb=before, peak_rss_mb=rss_mb('VmHWM'),
                      retained_energy=summary['retained_energy'])))
"""

DENSE_CHILD = MEMORY + """
import json, time
import torch; torch.set_num_threads({threads})
from wan_nb.lora_io import read_lora
a, b = read_lora({a!r}), read_lora({b!r})
before = rss_mb('VmRSS'); reset_peak()
out = {{}}
for name in {names!r}:
    t0 = time.perf_counter()
    D = a.modules[name].delta() - b.modules[name].delta()
    U, S, Vh = torch.linalg.svd(D, full_matrices=False)
    approx = (U[:, :{rank}] * S[:{rank}]) @ Vh[:{rank}]
    out[name] = dict(seconds=time.perf_counter() - t0, error=float((D - approx).norm()), norm=float(D.norm()))
print(json.dumps(dict(modules=out, rss_before_mb=before, peak_rss_mb=rss_mb('VmHWM'))))
"""


def anchors(seed: int = 0) -> tuple[Lora, Lora]:
    "Two rank-16 bf16 LoRAs with 14B shapes: B's factors are A's, slightly perturbed, with 4 of 16 directions changed."
    shapes = wan_shapes(BLOCKS, DIM, FFN)
    a = random_lora(shapes, rank=RANK, alpha=16.0, seed=seed, dtype=torch.bfloat16)
    c = random_lora(shapes, rank=RANK, seed=seed + 1, dtype=torch.bfloat16).modules
    changed = (torch.arange(RANK) < OUT_RANK).to(torch.bfloat16)
    b = Lora({n: LoraModule(n, A=m.A + 0.1 * c[n].A, B=m.B + 0.5 * c[n].B * changed, alpha=16.0) for n, m in a.modules.items()})
    for lora in (a, b):  # LoRA-sized values: deltas of about 1e-3 per weight
        for m in lora.modules.values(): m.A.mul_(0.02); m.B.mul_(0.01)
    return a, b


def exact_rank_r(ma: LoraModule, mb: LoraModule, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    "fp64 factors `(P, Q)` of the best rank-r approximation of `ma`'s delta minus `mb`'s: QRs and the core's SVD."
    U = torch.cat([ma.scale * ma.B.double(), -mb.scale * mb.B.double()], 1)
    Qu, Ru = torch.linalg.qr(U)
    Qv, Rv = torch.linalg.qr(torch.cat([ma.A.double(), mb.A.double()], 0).T)
    X, S, Yh = torch.linalg.svd(Ru @ Rv.T)
    return Qu @ (X[:, :r] * S[:r]), Yh[:r] @ Qv.T


def error_vs_exact(a: Lora, b: Lora, slider: Lora) -> float:
    "Largest relative Frobenius difference between a slider's layers and the exact ones, from 2r x 2r Gram matrices."
    worst = 0.0
    for name, m in slider.modules.items():
        P, Q = exact_rank_r(a.modules[name], b.modules[name], m.rank)
        L, R = torch.cat([P, -m.scale * m.B.double()], 1), torch.cat([Q, m.A.double()], 0)
        diff, norm = (L.T @ L * (R @ R.T)).sum().clamp(min=0).sqrt(), (P.T @ P * (Q @ Q.T)).sum().sqrt()
        worst = max(worst, float(diff / norm))
    return worst


def least_work_s(a: Lora, b: Lora, threads: int, repeats: int) -> dict:
    "Median seconds, on `threads` threads, to convert all factors to fp32 batch by batch, and to form their Grams."
    batches, workspace = _batches(a, b, list(a.modules)), threading.local()
    pairs = lambda names: [(a.modules[n], b.modules[n]) for n in names]
    def convert(batch):  # into one workspace per thread, as the slider does
        ka, kb, names = batch
        if not hasattr(workspace, 'buffer'): workspace.buffer = torch.empty(_BATCH_VALUES)
        _stack_factors(pairs(names), (1.0, 1.0), ka, kb, workspace.buffer)
    def grams(UV): U, V = UV; return U.mT @ U, V @ V.mT
    def timed(work, items) -> float:
        with _torch_threads(1), ThreadPoolExecutor(threads) as pool:
            t0 = time.perf_counter(); list(pool.map(work, items)); return time.perf_counter() - t0
    stacked = [_stack_factors(pairs(names), (1.0, 1.0), ka, kb)[:2] for ka, kb, names in batches]
    return dict(convert_s=statistics.median(timed(convert, batches) for _ in range(repeats)),
                gram_s=statistics.median(timed(grams, stacked) for _ in range(repeats)))


def run_child(code: str) -> dict:
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def io_seconds(d: Path) -> float:
    "Seconds to read both inputs and the slider, and write the slider again: the I/O floor."
    t0 = time.perf_counter()
    load_file(d/'a.safetensors'); load_file(d/'b.safetensors')
    save_file(load_file(d/'slider.safetensors'), d/'copy.safetensors')
    return time.perf_counter() - t0


def process_s(cmd: list[str], threads: int, repeats: int) -> float:
    "Median wall time of running `cmd` as a process `repeats` times (after one warm-up), with `threads` threads."
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def wan_nb_exe() -> str:
    "The `wan-nb` script beside this Python (the project's venv), or the one on PATH."
    here = Path(sys.executable).with_name('wan-nb')
    return str(here) if here.exists() else shutil.which('wan-nb')


def main(threads: int, dense_sample: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        a, b = anchors()
        write_lora(a, d/'a.safetensors', 'musubi'); write_lora(b, d/'b.safetensors', 'comfy')
        sizes = {f: (d/f).stat().st_size / 1e6 for f in ('a.safetensors', 'b.safetensors')}
        child = CHILD.format(threads=threads, a=str(d/'a.safetensors'), b=str(d/'b.safetensors'), out=str(d/'slider.safetensors'), rank=OUT_RANK)
        runs = [run_child(child) for _ in range(repeats + 1)][1:]  # after one warm-up, each in a fresh process
        ours = sorted(runs, key=lambda r: r['slider_s'])[len(runs) // 2]  # the median run
        out_mb = (d/'slider.safetensors').stat().st_size / 1e6
        io_s = statistics.median(io_seconds(d) for _ in range(repeats))
        command_s = process_s([wan_nb_exe(), 'slider', str(d/'a.safetensors'), str(d/'b.safetensors'),
                               '-o', str(d/'cli.safetensors'), '--rank', str(OUT_RANK)], threads, repeats)
        torch_s = process_s([sys.executable, '-c', 'import torch'], threads, repeats)
        ours.update(command_s=command_s, torch_s=torch_s,
                    error=error_vs_exact(a, b, slider_lora(a, b, rank=OUT_RANK, dtype=torch.float32)[0]),
                    least=least_work_s(a, b, threads, repeats))
        if not dense_sample: return summary(threads, sizes, out_mb, ours, io_s)
        names = [f'blocks.{i}.attn1.to_q' for i in range(dense_sample)] + [f'blocks.{i}.ffn.net.0.proj' for i in range(dense_sample)]
        dense = run_child(DENSE_CHILD.format(threads=threads, a=str(d/'a.safetensors'), b=str(d/'b.safetensors'), names=names, rank=OUT_RANK))
        slider = read_lora(d/'slider.safetensors')
        errors = {}
        for n in names:
            D = a.modules[n].delta() - b.modules[n].delta()
            errors[n] = float((D - slider.modules[n].delta()).norm()) / dense['modules'][n]['error'] - 1
    return dict(**summary(threads, sizes, out_mb, ours, io_s), **dense_summary(dense, dense_sample, ours, errors))


def summary(threads: int, sizes: dict, out_mb: float, ours: dict, io_s: float) -> dict:
    "Our times and memory against the I/O floor and the torch import, with the issue's targets."
    return dict(threads=threads, shapes=f'{BLOCKS} blocks x 10 layers, dim {DIM}, ffn {FFN}, rank {RANK} -> {OUT_RANK}, bf16',
                input_mb=round(sum(sizes.values()), 1), output_mb=round(out_mb, 1),
                slider_s=round(ours['slider_s'], 3), slider_import_s=round(ours['import_s'], 3),
                slider_rss_before_mb=round(ours['rss_before_mb']), slider_peak_rss_mb=round(ours['peak_rss_mb']),
                read_inputs_write_output_s=round(io_s, 3), slider_over_io=round(ours['slider_s'] / io_s, 2),
                target_slider_over_io_at_most_1_5=ours['slider_s'] / io_s <= 1.5,
                command_s=round(ours['command_s'], 3), torch_import_s=round(ours['torch_s'], 3),
                command_minus_torch_import_s=round(ours['command_s'] - ours['torch_s'], 3),
                target_command_at_most_torch_import_plus_0_5_s=ours['command_s'] - ours['torch_s'] <= 0.5,
                retained_energy=round(ours['retained_energy'], 4),
                max_rel_error_vs_exact_fp64=float(f"{ours['error']:.2e}"), target_error_at_most_1e_6=ours['error'] <= 1e-6,
                least_work_convert_s=round(ours['least']['convert_s'], 3), least_work_gram_s=round(ours['least']['gram_s'], 3),
                least_work_over_io=round(sum(ours['least'].values()) / io_s, 2))


def dense_summary(dense: dict, dense_sample: int, ours: dict, errors: dict) -> dict:
    "The dense route's times, memory and error, extrapolated to all layers."
    attn_s = sum(v['seconds'] for k, v in dense['modules'].items() if '.attn' in k) / dense_sample
    ffn_s = sum(v['seconds'] for k, v in dense['modules'].items() if '.ffn' in k) / dense_sample
    dense_total = BLOCKS * (8 * attn_s + 2 * ffn_s)
    return dict(dense_svd_s={'attn 5120x5120': round(attn_s, 2), 'ffn 13824x5120': round(ffn_s, 2)},
                dense_estimate_400_modules_s=round(dense_total, 1), dense_over_slider=round(dense_total / ours['slider_s']),
                dense_rss_before_mb=round(dense['rss_before_mb']), dense_peak_rss_mb=round(dense['peak_rss_mb']),
                max_rel_error_excess_vs_dense=float(f'{max(errors.values()):.2e}'))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--dense-sample', type=int, default=1, help='layers of each kind (attn, ffn) the dense SVD runs on (0: skip)')
    p.add_argument('--repeats', type=int, default=3, help='runs of each timing (median)')
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
