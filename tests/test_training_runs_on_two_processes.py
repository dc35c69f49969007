"""Distributed training: `wan-nb train` launched as 2 CPU processes (torchrun, gloo) splits the data between them,
lowers the loss, and only the main process writes files.

An audit hook in each process records every file it opens for writing, every folder it creates and every rename or
removal under the test's folder, so "only the main process writes" is checked directly, not only inferred from the
files left behind. (safetensors and torch.save write from native code, which the hook does not see, but the engine
writes every such file under a temporary name and renames it into place, and the renames are seen.)
"""
import json, os, subprocess, sys
from pathlib import Path

import torch

from wan_nb.cache import model_cache_index
from wan_nb.lora_io import merge_lora, read_lora
from wan_nb.models import load_wan
from wan_nb.plan import plan_dataset
from wan_nb.train import load_batch

STEPS, EVERY = 30, 10

DATASET = """[general]
caption_extension = ".txt"
batch_size = 1

[[datasets]]
image_directory = "{demo}/images"
cache_directory = "cache/images_64x64"
resolution = [64, 64]

[[datasets]]
video_directory = "{demo}/videos"
cache_directory = "cache/videos_head_64x32"
resolution = [64, 32]
frame_extraction = "head"
target_frames = [1]
"""

# runs `wan-nb train` (the console script's own entry point) with an audit hook that logs this process's writes
LAUNCH = """import json, os, sys
root, log, args = sys.argv[1], sys.argv[2], sys.argv[3:]
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
EVENTS = {'os.rename', 'os.mkdir', 'os.remove', 'os.rmdir', 'shutil.rmtree', 'os.link', 'os.symlink', 'os.truncate'}
writes = []
def hook(event, a):
    if event == 'open' and isinstance(a[0], (str, os.PathLike)):
        mode, flags = a[1], a[2]
        if not (mode and set(mode) & set('wax+')) and not (mode is None and flags & WRITE_FLAGS): return
    elif event not in EVENTS or not isinstance(a[0], (str, os.PathLike)): return
    path = os.path.abspath(os.fspath(a[0]))
    if path.startswith(root): writes.append([event, path])
sys.addaudithook(hook)
from wan_nb.cli import main
try: code = main(['train', *args])
finally:
    with open(os.path.join(log, f"writes_rank{os.environ['RANK']}.json"), 'x') as f: json.dump(writes, f)
sys.exit(code)
"""


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob('*')}


@torch.no_grad()
def fixed_loss(transformer, batches) -> float:
    "Flow-matching loss over fixed items, timesteps and noise: the same number for the same weights."
    g = torch.Generator().manual_seed(0)
    losses = []
    for b in batches:
        x0 = b['latents']
        for t in (0.1, 0.3, 0.5, 0.7, 0.9):
            noise = torch.randn(x0.shape, generator=g)
            pred = transformer(hidden_states=(1 - t) * x0 + t * noise, timestep=torch.full((len(x0),), 1000 * t),
                               encoder_hidden_states=b['text'], return_dict=False)[0]
            losses.append(torch.nn.functional.mse_loss(pred, noise - x0))
    return torch.stack(losses).mean().item()


def test_two_cpu_processes_train_and_only_the_main_one_writes(tiny_model_dir, demo_dir, tmp_path):
    work, logs = tmp_path/'work', tmp_path/'logs'
    work.mkdir(); logs.mkdir()
    (work/'dataset.toml').write_text(DATASET.format(demo=demo_dir))
    (work/'run.toml').write_text(f'model = "{tiny_model_dir}"\ndataset = "dataset.toml"\noutput_dir = "out"\nname = "ddp"\nrank = 8\n'
                                 f'learning_rate = 3e-3\ntimestep_sampling = "uniform"\nmax_train_steps = {STEPS}\n'
                                 f'checkpoint_every_n_steps = {EVERY}\nkeep_last_n_checkpoints = 3\n')
    (tmp_path/'launch.py').write_text(LAUNCH)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    env.pop('ACCELERATE_USE_CPU', None)  # the trainer itself must see that it was launched on CPUs
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(tmp_path/'launch.py'), str(work) + os.sep, str(logs), str(work/'run.toml'), '--set', 'seed=3'],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the two processes split each epoch: 36 items, batch 1 -> 18 steps per epoch (one process alone: 36)
    out = work/'out'
    events = [json.loads(line) for line in (out/'events.jsonl').read_text().splitlines()]
    assert [e['step'] for e in events] == list(range(1, STEPS + 1))  # one line per step, written once
    assert [e['epoch'] for e in events] == [0] * 17 + [1] * 13
    assert all(len(e['timesteps']) == 1 and e['expert'] == 'single' for e in events)
    state = torch.load(out/'checkpoints'/'step_000020'/'state.pt', weights_only=True)
    assert (state['step'], state['epoch'], state['batch_in_epoch']) == (20, 1, 2)

    # only the main process wrote, and it left exactly the run's files: no temporary names, no second copy
    writes = {r: json.loads((logs/f'writes_rank{r}.json').read_text()) for r in (0, 1)}
    assert writes[1] == [], writes[1][:10]
    assert any(p == str(work/'out'/'events.jsonl') for _, p in writes[0])
    assert any(e == 'os.rename' and p.startswith(str(work/'out'/'checkpoints'/'.step_')) for e, p in writes[0])  # atomic checkpoints
    run_files = {'events.jsonl', 'final', 'final/lora.safetensors', 'checkpoints',
                 *(f'checkpoints/step_{s:06d}{f}' for s in range(EVERY, STEPS + 1, EVERY) for f in ('', '/lora.safetensors', '/state.pt'))}
    assert files_under(out) == run_files
    cache = files_under(work/'cache')
    assert not [f for f in cache if Path(f).name.startswith('.') or '.tmp' in f], cache
    assert len([f for f in cache if '/latents/' in f]) == 36
    assert files_under(work) == {'dataset.toml', 'run.toml', 'out', 'cache'} | {f'out/{f}' for f in run_files} | {f'cache/{f}' for f in cache}

    # the final LoRA lowers a fixed-noise loss on the training items
    plan = plan_dataset(work/'dataset.toml', progress=False)
    index = model_cache_index(plan, tiny_model_dir)
    batches = [load_batch([e], plan, 0, 0, i) for i, e in enumerate(index.entries)]
    transformer = load_wan(tiny_model_dir, components=('transformer',)).transformer.eval()
    before = fixed_loss(transformer, batches)
    lora = read_lora(out/'final'/'lora.safetensors')
    assert set(lora.ranks) == {8} and lora.metadata['ss_steps'] == str(STEPS)
    after = fixed_loss(merge_lora(transformer, lora), batches)
    print(f'fixed-noise loss on the training items: {before:.4f} -> {after:.4f}')
    assert after < 0.85 * before, (before, after)
