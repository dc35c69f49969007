"""`check_plan` / `wan-nb plan --check` read one frame of every planned file at its bucket size, as caching will, and
name every file that cannot be decoded before caching starts; a second check reads only what did not pass before."""
import contextlib
import io
import json

import numpy as np
from PIL import Image

import wan_nb.cache
from wan_nb.cache import check_plan
from wan_nb.cli import main
from wan_nb.media import ProbeCache
from wan_nb.plan import plan_dataset

from damaged_media import corpus, damage, overwrite_keeping_size_and_time


def wan_nb_cli(*argv) -> tuple[int, str, str]:
    "`wan-nb ARGV` in this process: exit code, stdout, stderr."
    with contextlib.redirect_stdout(out := io.StringIO()), contextlib.redirect_stderr(err := io.StringIO()):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_every_damaged_file_is_named_once(demo_dir, tmp_path):
    probes = ProbeCache(tmp_path/'probes.json')
    plan = plan_dataset(corpus(demo_dir, tmp_path/'data'), probes, progress=False)
    bad = damage(tmp_path/'data')
    for workers in (1, 4):
        failures = check_plan(plan, ProbeCache(tmp_path/'probes.json'), workers=workers, progress=False)
        assert sorted(f['file'] for f in failures) == sorted(bad)  # clip_00 at two buckets: named once
        for f in failures: assert bad[f['file']] in f['reason'], f


def test_a_second_check_reads_nothing_that_passed(demo_dir, tmp_path, monkeypatch):
    probes = ProbeCache(tmp_path/'probes.json')
    plan = plan_dataset(corpus(demo_dir, tmp_path/'data'), probes, progress=False)
    read, reads = wan_nb.cache.read_frames, []
    monkeypatch.setattr(wan_nb.cache, 'read_frames', lambda path, *a: reads.append(path) or read(path, *a))
    assert check_plan(plan, probes, progress=False) == []
    files_and_buckets = {(i.path, i.width, i.height) for i in plan.items}
    assert len(reads) == len(files_and_buckets) < len(plan.items)  # one frame per file and bucket, not per window
    reads.clear()
    assert check_plan(plan, ProbeCache(tmp_path/'probes.json'), progress=False) == [] and reads == []


def test_plan_check_exits_1_and_lists_failures_in_the_json(demo_dir, tmp_path):
    config = corpus(demo_dir, tmp_path/'data', clips=2, stills=2)
    noise = tmp_path/'data'/'images'/'noise.png'  # a picture no check has read yet
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(noise)
    noise.with_suffix('.txt').write_text('noise')
    assert wan_nb_cli('plan', config)[0] == 0  # planned: its probe is cached
    overwrite_keeping_size_and_time(noise)
    assert wan_nb_cli('plan', config)[0] == 0  # the cached probe still says it is fine: the plan alone does not see it
    code, out, err = wan_nb_cli('plan', config, '--check', '--workers', '2', '--json', tmp_path/'plan.json')
    assert code == 1 and 'cannot be decoded: 1' in err
    assert 'check: 5 planned files read at their bucket sizes, 1 cannot be decoded' in out
    assert 'FAILED images/noise.png: ' in out
    [failure] = json.loads((tmp_path/'plan.json').read_text())['check']
    assert failure['file'] == 'images/noise.png' and 'cannot identify image file' in failure['reason']

    noise.unlink(); noise.with_suffix('.txt').unlink()
    code, out, _ = wan_nb_cli('plan', config, '--check', '--json', tmp_path/'plan.json')
    assert code == 0 and json.loads((tmp_path/'plan.json').read_text())['check'] == []
    assert 'check: 4 planned files read at their bucket sizes, 0 cannot be decoded' in out
