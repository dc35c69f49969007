"""Load time and peak memory of a 14B-shaped Wan transformer (2 blocks; figures also scaled to the release's 40)
from a ComfyUI bf16 file with `load_wan`, from a diffusers directory (`from_pretrained`), and as a bare
`safetensors.torch.load_file` of the same file. Targets (issue 12): load_wan at most 1.3x the bare load's time,
peak RSS at most 1.2x the weights' bf16 size (no fp32 copy, no second copy).

Each load runs in a fresh process with the file already in the page cache, and is timed until every weight byte
has been read (safetensors maps files lazily: `load_file` alone returns before reading anything); peak RSS is the
process's high-water mark (VmHWM) minus its resident memory just before the load. Prints JSON.
Usage: python benchmarks/bench_load.py [--blocks 2] [--repeat 2]
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
    for _ in range(2):  # the first build warms torch up; the second is the model build inside every load
        t0 = time.perf_counter()  # (RoPE tables etc.: the same cost for any number of blocks)
        with init_empty_weights(): WanTransformer3DModel.from_config(config)
    fixed = 0.0 if kind == 'bare' else time.perf_counter() - t0
    before = status_bytes('VmRSS')
    t0 = time.perf_counter()
    if kind == 'bare': obj = load_file(path)
    elif kind == 'comfyui': obj = load_wan(path, ('transformer',), dtype=torch.bfloat16).transformer
    else: obj = WanTransformer3DModel.from_pretrained(path, subfolder='transformer', torch_dtype=torch.bfloat16)
    tensors = list(obj.values() if isinstance(obj, dict) else obj.state_dict().values())
    touch(tensors)
    seconds = time.perf_counter() - t0
    peak = status_bytes('VmHWM')
    return dict(seconds=seconds, fixed_seconds=fixed, peak_rss=peak - before, tensor_bytes=sum(t.numel() * t.element_size() for t in tensors))


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


def main(blocks: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        comfy, diffusers_dir, sizes = write_files(Path(d), blocks)
        for f in [comfy, *Path(diffusers_dir).rglob('*.safetensors')]: f.read_bytes()  # into the page cache
        res = {k: measure(k, p, repeat) for k, p in (('bare', comfy), ('comfyui', comfy), ('diffusers', diffusers_dir))}
    scale = (sizes['total'] + (BLOCKS_RELEASE - blocks) * sizes['block']) / sizes['total']
    gb = lambda b: round(b / 1e9, 3)
    out = dict(blocks=blocks, weights_bf16_gb=gb(sizes['total']), scale_to_40_blocks=round(scale, 2),
               weights_bf16_gb_40_blocks=gb(sizes['total'] * scale))
    for k, r in res.items():
        t40 = r['fixed_seconds'] + (r['seconds'] - r['fixed_seconds']) * scale  # fixed part not scaled
        out[k] = dict(seconds=round(r['seconds'], 3), model_build_seconds=round(r['fixed_seconds'], 3),
                      peak_rss_gb=gb(r['peak_rss']), seconds_40_blocks=round(t40, 2),
                      peak_rss_gb_40_blocks=gb(r['peak_rss'] * scale),
                      time_vs_bare=round(r['seconds'] / res['bare']['seconds'], 2),
                      time_vs_bare_40_blocks=round(t40 / (res['bare']['seconds'] * scale), 2),
                      peak_rss_vs_weights=round(r['peak_rss'] / sizes['total'], 2))
    out['targets_met_40_blocks'] = dict(time=out['comfyui']['time_vs_bare_40_blocks'] <= 1.3,
                                        memory=out['comfyui']['peak_rss_vs_weights'] <= 1.2)
    return out


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--blocks', type=int, default=2)
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--one', nargs=2, metavar=('KIND', 'PATH'), help=argparse.SUPPRESS)
    a = p.parse_args()
    print(json.dumps(one(*a.one) if a.one else main(a.blocks, a.repeat), indent=None if a.one else 1))
