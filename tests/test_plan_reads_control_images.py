"""Control images for image-to-video, musubi's way: `control_directory` (a still of the clip's name stem) or a
JSONL line's `control_path`. A control of another aspect is kept and noted; a missing or broken one drops its clip
with the reason and the fix."""
import json

import numpy as np
import pytest
from PIL import Image

from wan_nb.demo_data import write_clip
from wan_nb.plan import ConfigError, load_dataset_config, plan_dataset, plan_dict


def frames(seed, size=(64, 32), n=9):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def clips(tmp_path):
    "Three 64x32 clips with captions, and a control folder with the first frame of `a` and a square still for `b`."
    (tmp_path/'clips').mkdir()
    (tmp_path/'controls').mkdir()
    for seed, name in enumerate('abc'):
        f = frames(seed)
        write_clip(tmp_path/'clips'/f'{name}.mp4', f, 16)
        (tmp_path/'clips'/f'{name}.txt').write_text(f'clip {name}')
        if name == 'a': Image.fromarray(f[0]).save(tmp_path/'controls'/'a.png')
    Image.fromarray(frames(9, (48, 48), 1)[0]).save(tmp_path/'controls'/'b.jpg')
    return tmp_path


def toml(tmp_path, body='control_directory = "controls"\n'):
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "clips"\nresolution = [64, 32]\n'
                                         'target_frames = [9]\n' + body)
    return tmp_path/'dataset.toml'


def by_source(plan):
    return {i.source: i for i in plan.items}, {d.source: d.reason for d in plan.dropped}


def test_control_directory_pairs_each_clip_with_the_still_of_its_stem(clips):
    (clips/'controls'/'c.webp').write_bytes((clips/'controls'/'a.png').read_bytes())  # a PNG under .webp: PIL reads it
    plan = plan_dataset(toml(clips), progress=False)
    assert plan.datasets[0].control_directory == clips/'controls'
    items, dropped = by_source(plan)
    assert dropped == {}
    assert {s: i.control for s, i in items.items()} == {
        'clips/a.mp4': str(clips/'controls'/'a.png'), 'clips/b.mp4': str(clips/'controls'/'b.jpg'),
        'clips/c.mp4': str(clips/'controls'/'c.webp')}
    assert all(len(i.control_content) == 16 for i in plan.items)
    assert plan_dict(plan)['items'][0]['control'] == items['clips/a.mp4'].control


def test_jsonl_lines_name_their_control_with_control_path(clips):
    lines = [{'video_path': 'clips/a.mp4', 'control_path': 'controls/a.png', 'caption': 'a'},
             {'video_path': 'clips/b.mp4', 'caption': 'b'},
             {'video_path': 'clips/c.mp4', 'control_path': 'controls/nothing.png', 'caption': 'c'}]
    (clips/'clips.jsonl').write_text(''.join(json.dumps(l) + '\n' for l in lines))
    (clips/'jsonl.toml').write_text('[[datasets]]\nvideo_jsonl_file = "clips.jsonl"\nresolution = [64, 32]\n'
                                    'target_frames = [9]\n')
    items, dropped = by_source(plan_dataset(clips/'jsonl.toml', progress=False))
    assert items['clips/a.mp4'].control == str(clips/'controls'/'a.png')
    assert 'no "control_path" on line 2 of clips.jsonl' in dropped['clips/b.mp4']
    assert f"control_path 'controls/nothing.png': {clips}/controls/nothing.png does not exist; fix the path" \
        in dropped['clips/c.mp4']


def test_control_of_another_aspect_is_kept_resized_like_its_clip_and_noted(clips):
    (clips/'controls'/'c.png').write_bytes((clips/'controls'/'a.png').read_bytes())
    plan = plan_dataset(toml(clips), progress=False)
    items, _ = by_source(plan)
    assert items['clips/b.mp4'].control == str(clips/'controls'/'b.jpg')  # kept
    notes = [w for w in plan.warnings if 'control image' in w]
    assert len(notes) == 1 and notes[0].startswith('dataset 0: 1 control image(s) of another aspect')
    assert 'controls/b.jpg (48x48 into 64x32, 50% cut off)' in notes[0] and 'a.png' not in notes[0]
    assert notes[0] in str(plan) and notes[0] in plan_dict(plan)['warnings']


def test_missing_control_image_drops_its_clip_naming_the_file_and_the_fix(clips):
    (clips/'controls'/'c.mp4').write_bytes((clips/'clips'/'c.mp4').read_bytes())  # a control video is not a still
    plan = plan_dataset(toml(clips), progress=False)
    items, dropped = by_source(plan)
    assert set(items) == {'clips/a.mp4', 'clips/b.mp4'}
    assert dropped['clips/c.mp4'] == (f'clips/c.mp4: no control image: {clips}/controls has no c.png, .jpg, .jpeg, '
                                      '.webp, .bmp, .avif, .tif or .tiff; add the still the clip starts from, or '
                                      'move the clip out of the dataset.')


def test_unreadable_control_image_drops_its_clip_with_the_reason(clips):
    (clips/'controls'/'c.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    items, dropped = by_source(plan_dataset(toml(clips), progress=False))
    assert set(items) == {'clips/a.mp4', 'clips/b.mp4'}
    assert dropped['clips/c.mp4'].startswith(f'clips/c.mp4: control image {clips}/controls/c.png: unreadable image')
    assert 'Re-export it as PNG or JPEG' in dropped['clips/c.mp4']


def test_control_directory_is_refused_where_it_cannot_mean_anything(clips):
    with pytest.raises(ConfigError, match='control_directory = \'stills\''):
        load_dataset_config(toml(clips, 'control_directory = "stills"\n'))
    (clips/'images').mkdir()
    (clips/'images.toml').write_text('[[datasets]]\nimage_directory = "images"\ncontrol_directory = "controls"\n')
    with pytest.raises(ConfigError, match='an image dataset has no clips'):
        load_dataset_config(clips/'images.toml')
    (clips/'clips.jsonl').write_text('{"video_path": "clips/a.mp4", "caption": "a"}\n')
    (clips/'jsonl.toml').write_text('[[datasets]]\nvideo_jsonl_file = "clips.jsonl"\ncontrol_directory = "controls"\n')
    with pytest.raises(ConfigError, match='as "control_path"'):
        load_dataset_config(clips/'jsonl.toml')


def test_fingerprint_follows_the_control_images(clips):
    (clips/'controls'/'c.png').write_bytes((clips/'controls'/'a.png').read_bytes())
    with_controls = plan_dataset(toml(clips), progress=False).fingerprint
    Image.fromarray(frames(7, (64, 32), 1)[0]).save(clips/'controls'/'c.png')
    assert plan_dataset(toml(clips), progress=False).fingerprint != with_controls
    assert plan_dataset(toml(clips, ''), progress=False).fingerprint != with_controls
