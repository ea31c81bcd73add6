"""The chapters are the tests: each notebook runs under `nbdev_test` on the real MNIST files.

Each notebook runs in its own `nbdev_test --n_workers 0` process: with no pool of daemon workers, the chapters'
DataLoaders really start their two worker processes (nbdev issue 1287). `MNIST_COURSE_QUICK=1` makes the training
chapters train on subsets for one epoch; the committed outputs come from full runs.
"""
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[2]
NBS = sorted(p.name for p in (REPO/'nbs').glob('*.ipynb'))
BIN = Path(sys.executable).parent

@pytest.mark.parametrize('nb', NBS)
def test_notebook(nb, mnist_root):
    env = {**os.environ, 'MNIST_COURSE_QUICK': '1', 'MPLBACKEND': 'Agg'}
    p = subprocess.run([str(BIN/'nbdev_test'), '--path', f'nbs/{nb}', '--n_workers', '0', '--do_print'],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"{nb} failed under nbdev_test:\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"

def test_package_is_what_notebooks_export(tmp_path):
    "`nbdev_export` on a copy of the notebooks writes exactly the committed package."
    for f in ['settings.ini', 'setup.py', 'README.md']: shutil.copy(REPO/f, tmp_path/f)
    shutil.copytree(REPO/'nbs', tmp_path/'nbs', symlinks=True, ignore=shutil.ignore_patterns('tests', '_proc', '.ipynb_checkpoints'))
    p = subprocess.run([str(BIN/'nbdev_export')], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    made = {f.name: f.read_text() for f in (tmp_path/'mnist_course').glob('*.py')}
    have = {f.name: f.read_text() for f in (REPO/'mnist_course').glob('*.py')}
    assert made.keys() == have.keys()
    assert [n for n in made if made[n] != have[n]] == [], "run nbdev_export and commit the result"

def test_notebooks_are_clean(tmp_path):
    "`nbdev_clean` changes no committed notebook."
    for f in ['settings.ini']: shutil.copy(REPO/f, tmp_path/f)
    shutil.copytree(REPO/'nbs', tmp_path/'nbs', symlinks=True, ignore=shutil.ignore_patterns('tests', '_proc', '.ipynb_checkpoints'))
    p = subprocess.run([str(BIN/'nbdev_clean')], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    dirty = [nb for nb in NBS if (tmp_path/'nbs'/nb).read_bytes() != (REPO/'nbs'/nb).read_bytes()]
    assert dirty == [], "run nbdev_clean and commit the result"

def test_readme_is_generated_from_index():
    "README.md is what `.ci/readme.py` makes of nbs/index.ipynb."
    p = subprocess.run([sys.executable, str(REPO/'.ci'/'readme.py'), '--check'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr

def test_saved_outputs_hold_no_progress_bar_redraws():
    "Saved outputs show each progress bar once, as Jupyter does, not every redraw (`.ci/tidy_outputs.py`)."
    p = subprocess.run([sys.executable, str(REPO/'.ci'/'tidy_outputs.py'), '--check', *[str(REPO/'nbs'/nb) for nb in NBS]],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
