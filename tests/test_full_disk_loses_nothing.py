"""A full disk while writing a checkpoint or a cache entry loses nothing: the write fails cleanly (no temporary left,
the previous file intact) with a message that says where, how much is free and how much it needed; caching reports
the entries it could not write and keeps the rest, and a run with room encodes only those."""
import contextlib
import gc
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wan_nb.cache import model_cache_index, verify_cache
from wan_nb.cli import cache_command
from wan_nb.core import DiskFullError, atomic_path, free_bytes
from wan_nb.plan import plan_dataset


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    "A size-limited tmpfs mounted at `folder` for the test; skipped (with the reason) where mounting is not allowed."
    folder.mkdir(parents=True)
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a {size} tmpfs at {folder} to fill it ({done.stderr.strip() or 'mount failed'}): "
                    "this test needs root or CAP_SYS_ADMIN, as CI has")
    try: yield folder
    finally:
        gc.collect()  # a failed writer's file object may live on in a traceback: close it before unmounting
        if subprocess.run(['umount', str(folder)], capture_output=True).returncode:
            subprocess.run(['umount', '-l', str(folder)], check=True)


def fill(disk: Path, leave: int) -> Path:
    "Write a filler file so that only about `leave` bytes stay free on `disk`."
    filler = disk/'filler'
    with open(filler, 'wb') as f: f.write(bytes(max(0, free_bytes(disk) - leave)))
    return filler


def leftovers(folder: Path) -> list[str]:
    "Temporaries and claims a failed write would leave behind."
    return sorted(p.name for p in folder.rglob('.*') if '.tmp' in p.name or p.name.endswith('.claim'))


def write_checkpoint(folder: Path, step: int, size_hint=None):
    "A checkpoint as the trainer writes one: a LoRA file (safetensors) and the resume state (torch.save)."
    with atomic_path(folder, size_hint=size_hint) as tmp:
        tmp.mkdir()
        save_file({'lora_A': torch.full((64, 64), float(step))}, tmp/'lora.safetensors')
        torch.save(dict(step=step, optimizer=torch.full((300_000 // 4,), float(step))), tmp/'state.pt')


def test_a_checkpoint_that_does_not_fit_fails_cleanly(tmp_path):
    with small_disk(tmp_path/'disk', '2m') as disk:
        checkpoints = disk/'run'/'checkpoints'
        write_checkpoint(checkpoints/'step_000001', 1)
        size = sum(p.stat().st_size for p in (checkpoints/'step_000001').iterdir())
        fill(disk, leave=100_000)  # the LoRA fits, the state (300 kB) does not: torch.save fails halfway
        with pytest.raises(DiskFullError) as failed:
            write_checkpoint(checkpoints/'step_000002', 2, size_hint=size)
        e = failed.value
        print(e)
        assert e.path == checkpoints/'step_000002' and e.needed_bytes == size and e.free_bytes < size
        for words in (str(checkpoints/'step_000002'), 'disk is full', 'KiB free on', str(disk), 'needs about',
                      'nothing was written', 'output_dir'):
            assert words in str(e), words
        assert sorted(p.name for p in checkpoints.iterdir()) == ['step_000001'] and leftovers(disk) == []
        assert torch.load(checkpoints/'step_000001'/'state.pt', weights_only=True)['step'] == 1  # intact

        # a file replaced in place (a LoRA, a cache entry): the old one stays, whole
        lora = disk/'run'/'final.safetensors'
        shutil.copy(checkpoints/'step_000001'/'lora.safetensors', lora)
        (disk/'filler').unlink(); fill(disk, leave=8_000)
        with pytest.raises(DiskFullError, match='its previous version is intact'):
            with atomic_path(lora) as tmp: save_file({'lora_A': torch.zeros(256, 256)}, tmp)
        assert load_file(lora)['lora_A'][0, 0] == 1 and leftovers(disk) == []


def test_caching_onto_a_full_disk_keeps_what_it_wrote(tiny_model_dir, demo_dir, tmp_path):
    with small_disk(tmp_path/'disk', '2m') as disk:
        config = tmp_path/'demo'/'full_disk.toml'
        shutil.copytree(demo_dir, tmp_path/'demo', ignore=shutil.ignore_patterns('cache'))
        config.write_text((demo_dir/'dataset.toml').read_text().replace('cache_directory = "cache/', f'cache_directory = "{disk}/'))
        filler = fill(disk, leave=450_000)  # the texts and some of the latents fit
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cache_command(config, tiny_model_dir, tmp_path/'report.json', progress=False)
        print(out.getvalue()[:3000])
        report = json.loads((tmp_path/'report.json').read_text())
        lat, txt = report['latents'], report['texts']
        assert code == 1 and 'DISK FULL' in out.getvalue() and 'cache_directory' in report['disk_full']
        assert lat['encoded'] > 0 and lat['failed'] > 0, report
        assert len(report['failures']) == lat['failed'] + txt['failed']
        assert all(f['reason'].startswith('not ') and f['file'].startswith(str(disk)) for f in report['failures'])
        assert leftovers(disk) == []

        plan = plan_dataset(config, progress=False)
        index = model_cache_index(plan, tiny_model_dir)
        problems = verify_cache(index, progress=False)
        assert sorted(p['file'] for p in problems) == sorted(f['file'] for f in report['failures'])
        assert all(p['reason'].startswith('missing') for p in problems)  # every entry written is whole

        filler.unlink()  # room again: only what failed is encoded
        with contextlib.redirect_stdout(io.StringIO()):
            assert cache_command(config, tiny_model_dir, tmp_path/'again.json', progress=False) == 0
        again = json.loads((tmp_path/'again.json').read_text())
        assert again['latents'] == dict(encoded=lat['failed'], reused=lat['encoded'], failed=0)
        assert again['texts'] == dict(encoded=txt['failed'], reused=txt['encoded'], failed=0)
        assert verify_cache(index, progress=False) == [] and leftovers(disk) == []
