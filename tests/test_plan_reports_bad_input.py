"""Bad input never crashes the plan and never disappears: a config error names the file, key and fix; a bad
source is dropped with its reason while the rest is planned."""
import shutil

import av
import numpy as np
import pytest
from PIL import Image

from wan_nb.demo_data import write_clip
from wan_nb.plan import ConfigError, load_dataset_config, plan_dataset


def clip(path, frames=20, fps=16, size=(64, 48)):
    return write_clip(path, [np.full((size[1], size[0], 3), 10 * i % 255, np.uint8) for i in range(frames)], fps)


@pytest.fixture
def videos(tmp_path):
    "A video dataset with four good clips and a caption for each, plus the config that reads it."
    d = tmp_path/'videos'
    d.mkdir()
    for i in range(4):
        clip(d/f'good_{i}.mp4')
        (d/f'good_{i}.txt').write_text(f'a clip number {i}')
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\ntarget_frames = [1, 17]\n')
    return d


def plan(tmp_path):
    return plan_dataset(tmp_path/'dataset.toml', progress=False)


def reasons(p):
    return {d.source.split('/')[-1]: d.reason for d in p.dropped}


def assert_rest_planned(p, good=4):
    assert {i.source for i in p.items} >= {f'videos/good_{i}.mp4' for i in range(good)}


def test_truncated_video_is_dropped_with_its_reason(tmp_path, videos):
    data = (videos/'good_0.mp4').read_bytes()
    (videos/'cut.mp4').write_bytes(data[:len(data) // 3])
    (videos/'cut.txt').write_text('cut')
    p = plan(tmp_path)
    assert 'cut.mp4' in reasons(p) and 're-encode' in reasons(p)['cut.mp4']
    assert_rest_planned(p)


def test_corrupt_video_is_dropped(tmp_path, videos):
    data = bytearray((videos/'good_1.mp4').read_bytes())
    data[48:len(data)] = bytes(len(data) - 48)  # keep the first box, zero everything else
    (videos/'zeroed.mp4').write_bytes(bytes(data))
    (videos/'zeroed.txt').write_text('zeroed')
    p = plan(tmp_path)
    assert 'zeroed.mp4' in reasons(p)
    assert_rest_planned(p)


def test_zero_frame_video_is_dropped(tmp_path, videos):
    with av.open(str(videos/'empty.avi'), 'w') as c:
        s = c.add_stream('libx264', rate=16)
        s.width, s.height, s.pix_fmt = 64, 48, 'yuv420p'
        c.start_encoding()
    (videos/'empty.txt').write_text('empty')
    assert 'decodes to 0 frames' in reasons(plan(tmp_path))['empty.avi']


def test_text_file_with_video_extension_is_dropped(tmp_path, videos):
    (videos/'notes.mp4').write_text('not a video at all')
    (videos/'notes.txt').write_text('notes')
    p = plan(tmp_path)
    assert 'notes.mp4: cannot be decoded' in reasons(p)['notes.mp4']
    assert_rest_planned(p)


def test_unreadable_image_is_dropped(tmp_path):
    (tmp_path/'images').mkdir()
    Image.new('RGB', (80, 80), 'red').save(tmp_path/'images'/'ok.png')
    (tmp_path/'images'/'bad.jpg').write_bytes(b'\xff\xd8\xff\xe0' + b'garbage' * 10)
    for n in ('ok', 'bad'): (tmp_path/'images'/f'{n}.txt').write_text(n)
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nimage_directory = "images"\nresolution = [64, 64]\n')
    p = plan(tmp_path)
    assert 'unreadable image' in reasons(p)['bad.jpg'] and [i.source for i in p.items] == ['images/ok.png']


def test_missing_empty_and_non_utf8_captions(tmp_path, videos):
    (videos/'good_0.txt').unlink()
    (videos/'good_1.txt').write_text('   \n')
    (videos/'good_2.txt').write_bytes('une vid\xe9o'.encode('latin-1'))
    p = plan(tmp_path)
    r = reasons(p)
    assert 'good_0.txt is missing' in r['good_0.mp4'] and 'default_caption' in r['good_0.mp4']
    assert 'not UTF-8' in r['good_2.mp4'] and 're-save it as UTF-8' in r['good_2.mp4']
    assert 'good_1.mp4' not in r and any('good_1.txt is empty' in w for w in p.warnings)
    assert {i.caption for i in p.items if i.source.endswith('good_1.mp4')} == {''}


def test_default_caption_and_trigger(tmp_path, videos):
    (videos/'good_0.txt').unlink()
    (videos/'good_1.txt').write_text('[trigger] style, a clip')
    (tmp_path/'dataset.toml').write_text('[general]\ndefault_caption = "[trigger] style"\ntrigger = "zxq"\n'
                                         '[[datasets]]\nvideo_directory = "videos"\n')
    captions = {i.source: i.caption for i in plan(tmp_path).items}
    assert captions['videos/good_0.mp4'] == 'zxq style' and captions['videos/good_1.mp4'] == 'zxq style, a clip'


def test_two_sources_with_one_stem(tmp_path, videos):
    shutil.copy(videos/'good_3.mp4', videos/'good_3.mkv')
    p = plan(tmp_path)
    assert 'same name stem as good_3.mkv' in reasons(p)['good_3.mp4']


def test_two_datasets_sharing_one_cache_directory(tmp_path, videos):
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\ncache_directory = "cache"\n'
                                         '[[datasets]]\nvideo_directory = "videos"\ncache_directory = "cache"\n')
    with pytest.raises(ConfigError, match='share the cache directory .*give each dataset its own cache_directory'):
        load_dataset_config(tmp_path/'dataset.toml')


def test_resolution_not_a_multiple_of_16(tmp_path, videos):
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\nresolution = [100, 60]\n')
    with pytest.raises(ConfigError, match=r'dataset.toml: \[\[datasets\]\] #1 resolution = \[100, 60\] .*use \[96, 48\] or \[112, 64\]'):
        load_dataset_config(tmp_path/'dataset.toml')
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\nresolution = [100, 60]\nenable_bucket = true\n')
    p = plan(tmp_path)
    assert any('not a multiple of 16' in w for w in p.warnings)
    assert all(i.width % 16 == 0 and i.height % 16 == 0 for i in p.items)


def test_target_frames_not_4n_plus_1_are_rounded_with_a_warning(tmp_path, videos):
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\ntarget_frames = [1, 19, 20]\n')
    p = plan(tmp_path)
    assert any('target_frames [1, 19, 20] rounded to [1, 17]' in w for w in p.warnings)
    assert {i.frames for i in p.items} == {1, 17}


def test_unknown_keys_name_the_key_and_the_valid_ones(tmp_path, videos):
    (tmp_path/'dataset.toml').write_text('[general]\nbatchsize = 2\n[[datasets]]\nvideo_directory = "videos"\n')
    with pytest.raises(ConfigError, match=r"\[general\] has unknown key 'batchsize' \(did you mean 'batch_size'\?\); valid keys there: .*num_repeats"):
        load_dataset_config(tmp_path/'dataset.toml')
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nimage_directory = "videos"\ntarget_frames = [1]\n')
    with pytest.raises(ConfigError, match="unknown key 'target_frames'"):  # a video key in an image dataset
        load_dataset_config(tmp_path/'dataset.toml')


def test_missing_directory(tmp_path):
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "clips"\n')
    with pytest.raises(ConfigError, match=r'video_directory = .clips.: .*clips does not exist; fix the path'):
        load_dataset_config(tmp_path/'dataset.toml')
