"""The package and the notebooks as people who never clone the repository get them: a wheel installed into a fresh
virtual environment outside it and used from an empty folder, a chapter run on its own there, and each chapter's
Colab badge and install cell."""
import configparser, json, os, shutil, subprocess, sys
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
    sh(tmp/'venv'/'bin'/'pip', 'install', wheel, 'jupyter')  # what a learner installs: the wheel and Jupyter, nothing else
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
    out = sh(bin_/'mnist-course', 'bench', '--steps', '1', '--rounds', '1', '--runs', '0', '--json-out', 'b.json', '--no-progress', cwd=empty)
    assert (empty/'b.json').exists(), out
    out = sh(bin_/'mnist-course', 'export', '--from', 'run', '--out', 'web', cwd=empty)  # chapter 6c's page's files
    assert '10,000 of 10,000 test predictions agree' in out, out
    assert sorted(p.name for p in (empty/'web').iterdir()) == ['model.json', 'model.onnx']
    again = subprocess.run([bin_/'mnist-course', 'export', '--from', 'run', '--out', 'web'], cwd=empty, capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.strip().endswith('choose another --out, or move it away'), again.stderr
    assert sorted(p.name for p in empty.iterdir()) == ['b.json', 'run', 'web']  # nothing else written where it ran

def test_a_chapter_runs_alone(installed, tmp_path):
    "A training chapter copied alone into an empty folder runs top to bottom (quick mode) with only the wheel and Jupyter."
    bin_, _ = installed
    shutil.copy(REPO/'nbs'/'02_training.ipynb', tmp_path)
    sh(bin_/'jupyter', 'nbconvert', '--to', 'notebook', '--execute', '--output', 'ran.ipynb', '02_training.ipynb',
       cwd=tmp_path, env={'MNIST_COURSE_QUICK': '1', 'MPLBACKEND': 'Agg'})
    ran = json.loads((tmp_path/'ran.ipynb').read_text())
    assert not [o for c in ran['cells'] for o in c.get('outputs', []) if o.get('output_type') == 'error']

def _colab():
    sys.path.insert(0, str(REPO/'.ci'))
    import colab
    return colab

def test_every_chapter_has_its_badge_and_install_cell():
    colab = _colab()
    cfg = configparser.ConfigParser(); cfg.read(REPO/'settings.ini')
    url, branch = cfg['DEFAULT']['git_url'], cfg['DEFAULT']['branch']
    assert subprocess.run([sys.executable, str(REPO/'.ci'/'colab.py'), '--check']).returncode == 0
    for nb in colab.chapters():
        cells = {c['id']: ''.join(c['source']) for c in json.loads(nb.read_text())['cells']}
        assert f"blob/{branch}/nbs/{nb.name}" in cells[colab.BADGE_ID] and url.split('github.com/')[1] in cells[colab.BADGE_ID]
        assert cells[colab.INSTALL_ID].startswith('#| hide') and f'git+{url}@{branch}' in cells[colab.INSTALL_ID]

def test_the_install_cell_does_nothing_where_the_package_is_installed():
    "Run where mnist_course is installed, with pip unable to reach anything: it must neither try nor print."
    code = _colab().install_cell()
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env={**os.environ, 'PIP_NO_INDEX': '1', 'PIP_FIND_LINKS': '/nonexistent', 'GIT_TERMINAL_PROMPT': '0'})
    assert p.returncode == 0 and p.stdout == p.stderr == '', p.stdout + p.stderr
    p = subprocess.run([sys.executable, '-c', code.replace("'mnist_course'", "'mnist_course_not_installed'")], capture_output=True, text=True,
                       env={**os.environ, 'PIP_NO_INDEX': '1', 'PIP_FIND_LINKS': '/nonexistent', 'GIT_TERMINAL_PROMPT': '0'})
    assert p.returncode != 0 and 'pip' in p.stderr  # where it is missing, the same cell does try to install it
