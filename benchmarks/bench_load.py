"""Load time and peak memory of a 14B-shaped Wan transformer (1 and 3 blocks, extrapolated to the release's 40)
from a ComfyUI bf16 file with `load_wan`, from a diffusers directory (`from_pretrained`), and as a bare
`safetensors.torch.load_file` of the same file. Targets (issue 12): load_wan at most 1.3x the bare load's time,
peak RSS at most 1.2x the weights' bf16 size (no fp32 copy, no second copy).

Each load runs in a fresh process with the file already in the page cache, and is timed until every weight byte
has been read (safetensors maps files lazily: `load_file` alone returns before reading anything); peak RSS is the
process's high-water mark (VmHWM) minus its resident memory just before the load. Each kind's time and memory are
fitted as a fixed cost plus a cost per block over the measured sizes and extrapolated to 40 blocks (28.6 GB: more
than this machine's memory, so it is not loaded directly). Prints JSON.
Usage: python benchmarks/bench_load.py [--blocks 1 3] [--repeat 3]
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

BLOCKS_RELEASE = 40


def status_bytes(field: str) -> int:
    "VmRSS / VmHWM of this process (VmHWM, unlike ru_maxrss, is not inherited from the parent across exec)."
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ':'))


def touch(tensors) -> None:
    "Read one byte of every 4 KiB page, so that lazily memory-mapped weights are really in memory."
    for t in tensors: t.detach().reshape(-1).view(torch.uint8)[::4096].sum()


def one(kind: str, path: str) -> dict:
    "Run one load in this process and return its time and memory."
    global torch
    import torch
    from safetensors.torch import load_file
    from diffusers import WanTransformer3DModel
    from wan_nb.models import load_wan
    from accelerate import init_empty_weights
    from wan_nb.models import _shipped_config
    config = _shipped_config('wan2.1-t2v-14b')
    with init_empty_weights(): WanTransformer3DModel.from_config(config)  # warm torch up, for every kind alike
    before = status_bytes('VmRSS')
    t0 = time.perf_counter()
    if kind == 'bare': obj = load_file(path)
    elif kind == 'comfyui': obj = load_wan(path, ('transformer',), dtype=torch.bfloat16).transformer
    else: obj = WanTransformer3DModel.from_pretrained(path, subfolder='transformer', torch_dtype=torch.bfloat16)
    tensors = list(obj.values() if isinstance(obj, dict) else obj.state_dict().values())
    touch(tensors)
    seconds = time.perf_counter() - t0
    peak = status_bytes('VmHWM')
    return dict(seconds=seconds, peak_rss=peak - before, tensor_bytes=sum(t.numel() * t.element_size() for t in tensors))


def write_files(root: Path, blocks: int) -> tuple[Path, Path, dict]:
    "A 14B-shaped transformer with random bf16 weights as a ComfyUI file and as a diffusers directory."
    import torch
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file
    from wan_nb.models import _original_name, _shipped_config, load_wan
    with init_empty_weights():
        meta = WanTransformer3DModel.from_config({**_shipped_config('wan2.1-t2v-14b'), 'num_layers': blocks})
    g = torch.Generator().manual_seed(0)
    sd = {'model.diffusion_model.' + _original_name(k): (torch.randn(v.shape, generator=g) * 0.02).to(torch.bfloat16)
          for k, v in meta.state_dict().items()}
    sizes = dict(total=sum(v.numel() * 2 for v in sd.values()),
                 block=sum(v.numel() * 2 for k, v in sd.items() if '.blocks.0.' in k))
    comfy = root/'wan2.1_t2v_14B_bf16.safetensors'
    save_file(sd, comfy)
    del sd
    load_wan(comfy, ('transformer',), dtype=torch.bfloat16).transformer.save_pretrained(root/'diffusers'/'transformer')
    return comfy, root/'diffusers', sizes


def measure(kind: str, path: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        r = subprocess.run([sys.executable, __file__, '--one', kind, str(path)], capture_output=True, text=True,
                           check=True)
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r['seconds'])
    return dict(best, peak_rss=max(r['peak_rss'] for r in runs))


def fit(x: list[int], y: list[float]) -> tuple[float, float]:
    "Least-squares (intercept, slope) of y against x: a load's fixed cost and its cost per block."
    n, mx, my = len(x), sum(x) / len(x), sum(y) / len(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return my - slope * mx, slope


def main(sizes: list[int], repeat: int) -> dict:
    "Measure every kind of load at each number of blocks; extrapolate each to the release's 40 by a linear fit."
    runs, weights = {}, {}
    for blocks in sizes:
        with tempfile.TemporaryDirectory() as d:
            comfy, diffusers_dir, size = write_files(Path(d), blocks)
            weights[blocks] = size['total']
            for f in [comfy, *Path(diffusers_dir).rglob('*.safetensors')]: f.read_bytes()  # into the page cache
            for kind, path in (('bare', comfy), ('comfyui', comfy), ('diffusers', diffusers_dir)):
                runs[kind, blocks] = measure(kind, path, repeat)
    gb = lambda b: round(b / 1e9, 3)
    wa, wb = fit(sizes, [weights[b] for b in sizes])
    w40 = wa + BLOCKS_RELEASE * wb
    out = dict(blocks_measured=sizes, weights_bf16_gb={b: gb(weights[b]) for b in sizes},
               weights_bf16_gb_40_blocks=gb(w40))
    t40 = {}
    for kind in ('bare', 'comfyui', 'diffusers'):
        secs = [runs[kind, b]['seconds'] for b in sizes]
        rss = [runs[kind, b]['peak_rss'] for b in sizes]
        a, b = fit(sizes, secs)
        ra, rb = fit(sizes, rss)
        t40[kind] = a + BLOCKS_RELEASE * b
        out[kind] = dict(seconds={n: round(t, 3) for n, t in zip(sizes, secs)},
                         peak_rss_gb={n: gb(r) for n, r in zip(sizes, rss)},
                         fixed_seconds=round(a, 3), seconds_per_block=round(b, 4),
                         seconds_40_blocks=round(t40[kind], 2),
                         peak_rss_gb_40_blocks=gb(ra + BLOCKS_RELEASE * rb),
                         peak_rss_vs_weights_40_blocks=round((ra + BLOCKS_RELEASE * rb) / w40, 2))
    for kind in ('comfyui', 'diffusers'):
        out[kind]['time_vs_bare'] = {n: round(runs[kind, n]['seconds'] / runs['bare', n]['seconds'], 2)
                                     for n in sizes}
        out[kind]['time_vs_bare_40_blocks'] = round(t40[kind] / t40['bare'], 2)
    out['targets_met_40_blocks'] = dict(time=out['comfyui']['time_vs_bare_40_blocks'] <= 1.3,
                                        memory=out['comfyui']['peak_rss_vs_weights_40_blocks'] <= 1.2)
    return out


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--blocks', type=int, nargs='+', default=[1, 3], help='block counts to measure (at least two)')
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--one', nargs=2, metavar=('KIND', 'PATH'), help=argparse.SUPPRESS)
    a = p.parse_args()
    print(json.dumps(one(*a.one) if a.one else main(sorted(set(a.blocks)), a.repeat), indent=None if a.one else 1))
