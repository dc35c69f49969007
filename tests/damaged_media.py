"""Small copies of the demo dataset, and the damage files suffer between planning and caching."""
import os
import shutil

CONFIG = '''[[datasets]]
image_directory = "images"
cache_directory = "cache/images"
resolution = [64, 64]
[[datasets]]
video_directory = "videos"
cache_directory = "cache/videos"
resolution = [64, 32]
target_frames = [1, 13]
'''


def corpus(demo_dir, root, clips=4, stills=4):
    "A copy of a few demo clips and stills with their captions, and a config that reads them."
    for sub, names in (('videos', [f'clip_{i:02d}.mp4' for i in range(clips)]),
                       ('images', sorted(p.name for p in (demo_dir/'images').glob('still_*.*') if p.suffix != '.txt')[:stills])):
        (root/sub).mkdir(parents=True)
        for name in names:
            shutil.copy(demo_dir/sub/name, root/sub)
            shutil.copy((demo_dir/sub/name).with_suffix('.txt'), root/sub)
    (root/'dataset.toml').write_text(CONFIG)
    return root/'dataset.toml'


def overwrite_keeping_size_and_time(path):
    "Zero bytes over the whole file, its size and modification time kept: its cached probe still says it is fine."
    st = path.stat()
    path.write_bytes(bytes(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def damage(root) -> dict[str, str]:
    "Damage four files as copies and edits do; the name of each as the plan gives it -> what a failure should say."
    clip = root/'videos'/'clip_00.mp4'
    clip.write_bytes(clip.read_bytes()[:3000])  # a copy that died
    (root/'videos'/'clip_01.mp4').unlink()
    (root/'images'/'still_00.png').write_bytes(b'not an image\n' * 40)  # another size: probed again, refused
    overwrite_keeping_size_and_time(root/'images'/'still_01.jpg')  # the probe cache still says it is fine
    return {'videos/clip_00.mp4': 'cannot be decoded', 'videos/clip_01.mp4': 'the file is gone since it was planned',
            'images/still_00.png': 'cannot identify image file', 'images/still_01.jpg': 'cannot identify image file'}
