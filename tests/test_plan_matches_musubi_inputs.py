"""Inputs musubi-tuner accepts plan in wan-nb too, and where the two differ the plan says so: JSONL frame folders,
JSONL paths relative to the working directory, the buckets of a resolution that is not a multiple of 16, heads of
clips under 16 fps, and a demo config that musubi's bucket code can run."""
import json
import math
import tomllib

import numpy as np
from PIL import Image

from wan_nb.buckets import bucket_sizes
from wan_nb.demo_data import _DATASET_TOML, write_clip
from wan_nb.media import ProbeCache
from wan_nb.plan import load_dataset_config, plan_dataset


def frames(folder, n, size=(64, 48)):
    folder.mkdir(parents=True)
    for k in range(n): Image.new('RGB', size, (8 * k % 256, 0, 0)).save(folder/f'frame_{k:04d}.png')
    return folder


def plan(config, tmp_path):
    return plan_dataset(config, ProbeCache(tmp_path/'probes.json'), progress=False)


def test_jsonl_frame_folder_is_a_clip_at_16_fps_or_its_source_fps(tmp_path):
    frames(tmp_path/'walk', 30)
    (tmp_path/'clips.jsonl').write_text(json.dumps({'video_path': 'walk', 'caption': 'a walk, as frames'}) + '\n')
    (tmp_path/'dataset.toml').write_text(
        '[[datasets]]\nvideo_jsonl_file = "clips.jsonl"\nresolution = [64, 48]\ntarget_frames = [1, 13, 25, 33]\n'
        '[[datasets]]\nvideo_jsonl_file = "clips.jsonl"\ncache_directory = "c30"\nresolution = [64, 48]\n'
        'frame_extraction = "chunk"\ntarget_frames = [9]\nsource_fps = 30.0\n')
    p = plan(tmp_path/'dataset.toml', tmp_path)
    assert sorted(i.frames for i in p.items if i.dataset == 0) == [1, 13, 25]  # 30 frames taken as 16 fps
    assert [d.reason for d in p.dropped] == [
        'walk: 30 frames at 16 fps (a folder of frames; set source_fps if they were taken at another rate) < target 33']
    # at source_fps 30 musubi's accumulator keeps 16 of the 30 frames: one 9-frame chunk
    assert [(i.start, i.frames) for i in p.items if i.dataset == 1] == [(0, 9)]
    assert {i.path for i in p.items} == {str(tmp_path/'walk')}


def test_jsonl_paths_from_the_working_directory_resolve_with_a_note(tmp_path, monkeypatch):
    frames(tmp_path/'data'/'walk', 9)
    write_clip(tmp_path/'data'/'run.mp4', [np.full((48, 64, 3), 9 * k, np.uint8) for k in range(9)], 16)
    (tmp_path/'lists').mkdir()
    lines = [{'video_path': 'data/walk', 'caption': 'frames'}, {'video_path': 'data/run.mp4', 'caption': 'a clip'},
             {'video_path': 'data/gone.mp4', 'caption': 'nowhere'}]
    (tmp_path/'lists'/'clips.jsonl').write_text(''.join(json.dumps(l) + '\n' for l in lines))
    (tmp_path/'lists'/'dataset.toml').write_text('[[datasets]]\nvideo_jsonl_file = "clips.jsonl"\nresolution = [64, 48]\n'
                                                 'target_frames = [1, 9]\n')
    monkeypatch.chdir(tmp_path)  # musubi-tuner is run from here; its JSONL paths start here
    p = plan(tmp_path/'lists'/'dataset.toml', tmp_path)
    assert sorted((i.source, i.frames) for i in p.items) == [('data/run.mp4', 1), ('data/run.mp4', 9),
                                                             ('data/walk', 1), ('data/walk', 9)]
    assert {i.path for i in p.items} == {str(tmp_path/'data'/'walk'), str(tmp_path/'data'/'run.mp4')}
    assert [d.reason for d in p.dropped] == [
        f"data/gone.mp4: {tmp_path/'lists'/'data'/'gone.mp4'} does not exist; fix the path or remove its line."]
    [note] = [w for w in p.warnings if 'working directory' in w]
    assert note.startswith(f"{tmp_path/'lists'/'clips.jsonl'}: 2 path(s) on its lines are not beside it, so they were "
                           f"read from the working directory {tmp_path}, as musubi-tuner reads them (data/walk, data/run.mp4)")
    # paths beside the JSONL file win, and need no note
    (tmp_path/'lists'/'data').mkdir(); (tmp_path/'data'/'run.mp4').rename(tmp_path/'lists'/'data'/'run.mp4')
    p = plan(tmp_path/'lists'/'dataset.toml', tmp_path)
    assert {i.path for i in p.items} == {str(tmp_path/'data'/'walk'), str(tmp_path/'lists'/'data'/'run.mp4')}
    assert '1 path(s) on its lines are not beside it' in ' '.join(p.warnings)


def test_a_resolution_not_a_multiple_of_16_names_the_buckets_it_uses(tmp_path):
    (tmp_path/'images').mkdir()
    for i, size in enumerate([(200, 40), (120, 40), (90, 90), (40, 120), (40, 200)]):
        Image.new('RGB', size, 'red').save(tmp_path/'images'/f'{i}.png')
        (tmp_path/'images'/f'{i}.txt').write_text('red')
    (tmp_path/'dataset.toml').write_text('[general]\nenable_bucket = true\n'
                                         '[[datasets]]\nimage_directory = "images"\nresolution = [40, 32]\n')
    p = plan(tmp_path/'dataset.toml', tmp_path)
    [warning] = [w for w in p.warnings if 'not a multiple of 16' in w]
    used = {(i.width, i.height) for i in p.items}
    named = warning.split('it uses the buckets ')[1].split('.')[0]
    assert named == '16x48, 16x80, 32x32, 48x16, 80x16' == ', '.join(f'{w}x{h}' for w, h in bucket_sizes((40, 32)))
    assert used == {(16, 80), (16, 48), (32, 32), (48, 16), (80, 16)}  # every named bucket, and only those
    assert '[32, 32] gives 16x64, 32x32, 64x16' in warning  # the old hint's buckets, shown to differ


def test_heads_under_16_fps_keep_every_window_and_say_how_musubi_differs(tmp_path):
    (tmp_path/'videos').mkdir()
    write_clip(tmp_path/'videos'/'slow.mp4', [np.full((48, 64, 3), 9 * k, np.uint8) for k in range(20)], 8)
    (tmp_path/'videos'/'slow.txt').write_text('a slow clip')
    (tmp_path/'dataset.toml').write_text('[[datasets]]\nvideo_directory = "videos"\nresolution = [64, 48]\n'
                                         'target_frames = [1, 13, 17]\nsource_fps = 8.0\n')
    p = plan(tmp_path/'dataset.toml', tmp_path)
    assert sorted(i.frames for i in p.items) == [1, 13, 17]  # 20 frames at 8 fps: none dropped, none repeated
    # musubi's reader: the 16 fps index advances 2 per frame and stops at 17, so it returns 9 frames
    acc, read = 0.0, 0
    while int(acc) < 17: acc, read = acc + 16 / 8, read + 1
    assert read == 9
    [note] = [w for w in p.warnings if 'under 16' in w]
    assert note == ("dataset 0: source_fps = 8 is under 16. musubi-tuner's reader stops a head at frame 17 of the 16 fps "
                    "timeline, which such a clip reaches after 9 of its frames, so musubi makes no 13, 17-frame heads "
                    "here; wan-nb keeps every window the frames allow (a clip under 16 fps keeps all its frames, none "
                    "repeated).")
    (tmp_path/'dataset.toml').write_text((tmp_path/'dataset.toml').read_text().replace('8.0', '24.0'))
    assert not [w for w in plan(tmp_path/'dataset.toml', tmp_path).warnings if 'under 16' in w]


def musubi_min_bucket_width(resolution):
    "musubi-tuner's BucketSelector: its smallest bucket width (0 makes it divide by zero)."
    sqrt = int(math.sqrt(resolution[0] * resolution[1]))
    return sqrt // 2 - (sqrt // 2) % 16


def test_the_demo_config_is_one_musubi_runs(tmp_path):
    sections = tomllib.loads(_DATASET_TOML)['datasets']
    assert len(sections) == 3 and [('image_directory' in s) for s in sections] == [True, False, False]
    for s in sections:
        assert s['resolution'][0] * s['resolution'][1] >= 32 * 32 and musubi_min_bucket_width(s['resolution']) >= 16
    assert musubi_min_bucket_width((32, 16)) == 0  # the old third section
    (tmp_path/'dataset.toml').write_text(_DATASET_TOML)
    for d in ('images', 'videos'): (tmp_path/d).mkdir()
    assert not [w for w in load_dataset_config(tmp_path/'dataset.toml').warnings if '32x32' in w]
    (tmp_path/'dataset.toml').write_text(_DATASET_TOML.replace('[48, 32]', '[32, 16]'))
    [note] = [w for w in load_dataset_config(tmp_path/'dataset.toml').warnings if '32x32' in w]
    assert "resolution = [32, 16] has an area under 32x32: musubi-tuner's bucket code divides by zero" in note
