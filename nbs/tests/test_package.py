"""The package as people who `pip install` it get it: a wheel built from this repository, installed into a fresh
virtual environment outside it, used from an empty folder (issue 14, first part)."""
import configparser, os, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[2]

def sh(*args, cwd=None, env=None, timeout=900):
    p = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert p.returncode == 0, f"{' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr

def test_version_matches_settings():
    import mnist_course
    cfg = configparser.ConfigParser(); cfg.read(REPO/'settings.ini')
    assert mnist_course.__version__ == cfg['DEFAULT']['version']

@pytest.fixture(scope='module')
def installed(tmp_path_factory, mnist_root):
    "A wheel of this repository installed into a fresh virtual environment (torch from where the README's install takes it)."
    tmp = tmp_path_factory.mktemp('wheel')
    sh(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-w', tmp/'dist', REPO)
    wheel, = (tmp/'dist').glob('mnist_course-*.whl')
    sh(sys.executable, '-m', 'venv', tmp/'venv')
    sh(tmp/'venv'/'bin'/'pip', 'install', wheel)
    empty = tmp/'empty'; empty.mkdir()
    return tmp/'venv'/'bin', empty

def test_wheel_works_from_an_empty_folder(installed):
    bin_, empty = installed
    import mnist_course
    assert sh(bin_/'mnist-course', '--version', cwd=empty).strip() == f'mnist-course {mnist_course.__version__}'
    where = sh(bin_/'python', '-c', 'import mnist_course; print(mnist_course.__file__)', cwd=empty).strip()
    assert Path(where).is_relative_to(bin_.parent) and not Path(where).is_relative_to(REPO), where  # the installed copy
    sh(bin_/'python', '-c', 'from mnist_course.model import Net, Net2, train, test, get_incorrect_test_predictions\n'
       'from mnist_course.utils import display_data, display_model_stats, plot_test_incorrect_predictions', cwd=empty)
    out = sh(bin_/'mnist-course', 'train', '--out', 'run', '--n-train', '2000', '--n-test', '500', '--epochs', '1', '--no-progress', cwd=empty)
    assert 'final test accuracy' in out and (empty/'run'/'metrics.json').exists(), out
    out = sh(bin_/'mnist-course', 'bench', '--steps', '1', '--rounds', '1', '--epochs', '0', '--json-out', 'b.json', '--no-progress', cwd=empty)
    assert (empty/'b.json').exists(), out
    assert sorted(p.name for p in empty.iterdir()) == ['b.json', 'run']  # nothing else written where it ran
