import pytest

from wan_nb.demo_data import make_demo_data
from wan_nb.models import make_tiny_model


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    "The tiny Wan pipeline, written once per test session."
    return make_tiny_model(tmp_path_factory.mktemp('models')/'tiny-wan')


@pytest.fixture(scope='session')
def demo_dir(tmp_path_factory):
    "The demo dataset, written once per test session."
    return make_demo_data(tmp_path_factory.mktemp('data')/'demo')
