"The demo dataset is real media: PyAV decodes every clip to the frame count and rate that were asked for."
import json
import tomllib
from fractions import Fraction

import av
from PIL import Image

# The keys musubi-tuner accepts (anything else is an error there).
GENERAL_KEYS = {'resolution', 'caption_extension', 'batch_size', 'num_repeats', 'enable_bucket', 'bucket_no_upscale'}
IMAGE_KEYS = GENERAL_KEYS | {'image_directory', 'image_jsonl_file', 'cache_directory'}
VIDEO_KEYS = GENERAL_KEYS | {'video_directory', 'video_jsonl_file', 'cache_directory', 'target_frames', 'frame_extraction',
                             'frame_stride', 'frame_sample', 'max_frames', 'source_fps'}


def manifest(demo_dir):
    return json.loads((demo_dir/'manifest.json').read_text())


def test_every_clip_decodes_to_the_requested_frames_rate_and_size(demo_dir):
    clips = manifest(demo_dir)['clips']
    assert len(clips) == 24
    for clip in clips:
        with av.open(str(demo_dir/'videos'/clip['name'])) as container:
            stream = container.streams.video[0]
            frames = list(container.decode(stream))
            assert stream.codec_context.name == 'h264'
            assert len(frames) == clip['frames'], clip['name']
            assert stream.average_rate == clip['fps'], clip['name']
            assert (frames[0].width, frames[0].height) == (clip['width'], clip['height'])
            times = [f.pts * f.time_base for f in frames]
            assert all(b - a == Fraction(1, clip['fps']) for a, b in zip(times, times[1:])), clip['name']


def test_mixed_rates_aspects_and_short_clips(demo_dir):
    clips = manifest(demo_dir)['clips']
    assert {c['fps'] for c in clips} == {16, 24, 25, 30}
    assert {round(c['width'] / c['height'], 2) for c in clips} == {1.78, 1.85, 1.33, 0.56}
    longest_target = max(max(d.get('target_frames', [1])) for d in tomllib.loads((demo_dir/'dataset.toml').read_text())['datasets'])
    short = [c for c in clips if c['frames_at_16fps'] < longest_target]
    assert 2 <= len(short) <= 6
    assert any(c['frames'] >= longest_target for c in short), 'a clip that is only too short after resampling to 16 fps'


def test_stills_are_larger_than_their_bucket_and_open(demo_dir):
    stills = manifest(demo_dir)['stills']
    assert len(stills) == 12 and {s['name'].rsplit('.', 1)[1] for s in stills} == {'png', 'jpg'}
    for s in stills:
        with Image.open(demo_dir/'images'/s['name']) as im:
            assert im.size == (s['width'], s['height']) and im.width * im.height > 64 * 64


def test_every_media_file_has_its_caption(demo_dir):
    media = [*(demo_dir/'videos').glob('*.mp4'), *(demo_dir/'images').glob('*.png'), *(demo_dir/'images').glob('*.jpg')]
    assert len(media) == 36
    for m in media:
        caption = m.with_suffix('.txt').read_text().strip()
        assert len(caption.split()) >= 8 and any(w in caption for w in ('moves', 'rises', 'falls', 'rotates', 'grows', 'shrinks', 'changes'))


def test_dataset_toml_is_musubi_format(demo_dir):
    cfg = tomllib.loads((demo_dir/'dataset.toml').read_text())
    assert set(cfg) == {'general', 'datasets'} and set(cfg['general']) <= GENERAL_KEYS
    kinds = []
    for d in cfg['datasets']:
        kind = 'image' if 'image_directory' in d else 'video'
        kinds.append(kind)
        assert set(d) <= (IMAGE_KEYS if kind == 'image' else VIDEO_KEYS), d
        assert (demo_dir/d[f'{kind}_directory']).is_dir()
        assert all(x % 16 == 0 for x in d['resolution'])
        assert all((t - 1) % 4 == 0 for t in d.get('target_frames', [1]))
    assert kinds == ['image', 'video', 'video']
    assert len({d['cache_directory'] for d in cfg['datasets']}) == 3
