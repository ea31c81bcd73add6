"""The chapters are the tests: each notebook runs under `nbdev_test` on the real MNIST files.

Each notebook runs in its own `nbdev_test --n_workers 0` process: with no pool of daemon workers, the chapters'
DataLoaders really start their two worker processes (nbdev issue 1287). `MNIST_COURSE_QUICK=1` makes the training
chapters train on subsets of a few thousand images for a few epochs at most; the committed outputs come from full runs.
The other checks hold the chapters to the course's form: short cells and lines, a Summary and Exercises in every
chapter, self-checks whose solutions run (in `10_solutions.ipynb`), every parameter documented, and chapter 4 reusing chapter 3's model.
"""
import ast, inspect, json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[2]
NBS = sorted(p.name for p in (REPO/'nbs').glob('*.ipynb'))
BIN = Path(sys.executable).parent

# their checks compare runs: `.ci/run` runs them again in bfloat16
PRECISION_SENSITIVE = ['08c_distributed.ipynb', '08d_launch.ipynb']

@pytest.mark.parametrize('nb', [pytest.param(nb, marks=pytest.mark.precision) if nb in PRECISION_SENSITIVE else nb for nb in NBS])
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

CHAPTERS = [nb for nb in NBS if re.match(r'0[0-8]_|06[a-c]_|08[a-d]_', nb)]

def _cells(nb): return json.loads((REPO/'nbs'/nb).read_text())['cells']
def _src(c): return ''.join(c['source'])

def test_no_code_cell_is_longer_than_40_lines():
    long = [(nb, i, len(_src(c).splitlines())) for nb in NBS for i, c in enumerate(_cells(nb))
            if c['cell_type'] == 'code' and len(_src(c).splitlines()) > 40]
    assert long == [], f"code cells over 40 lines (notebook, cell, lines): {long}"

def test_no_code_line_is_longer_than_100_characters():
    "The site's code column shows 100 characters at 1280 pixels (test_docs checks it): longer lines are cut there."
    wide = [(nb, c.get('id'), len(l)) for nb in NBS for c in _cells(nb)
            if c['cell_type'] == 'code' for l in _src(c).splitlines() if len(l) > 100]
    assert wide == [], f"code lines over 100 characters (notebook, cell, length): {wide}"

# A chapter uses only what earlier chapters taught. The exercises' checkers and the fetching appendix may be imported
# anywhere.
ANYWHERE = {'exercises', 'fetch'}

def _code(c):
    "A code cell's source as Python: IPython's `!` and `%` lines blanked."
    return '\n'.join('' if re.match(r'\s*[!%]', l) else l for l in _src(c).splitlines())

def _definitions() -> dict:
    "Where each module and each (module, name) of the package is first defined: the notebook's place in NBS."
    where = {}
    for i, nb in enumerate(NBS):
        cells = _cells(nb)
        default = next((m.group(1) for c in cells for m in [re.search(r'^#\|\s*default_exp\s+(\S+)', _src(c), re.M)]
                        if m), None)
        if default: where.setdefault(default, i)
        for c in cells:
            m = re.match(r'#\|[ \t]*export[is]?\b[ \t]*(\S*)', _src(c))
            if c['cell_type'] != 'code' or not m: continue
            mod = m.group(1) or default
            for node in ast.parse(_code(c)).body:
                names = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                         [a.asname or a.name.split('.')[0] for a in node.names]
                         if isinstance(node, (ast.Import, ast.ImportFrom)) else
                         [t.id for n in ast.walk(node) if isinstance(n, (ast.Assign, ast.AnnAssign))
                          for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                          if isinstance(t, ast.Name)])
                for name in names: where.setdefault((mod, name), i)
    return where

def _forward_imports() -> set:
    "(notebook, module, name) for each import of a name that a later notebook defines."
    where, found = _definitions(), set()
    for i, nb in enumerate(NBS):
        for c in _cells(nb):
            if c['cell_type'] != 'code': continue
            for node in ast.walk(ast.parse(_code(c))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('mnist_course'):
                    mod = node.module.partition('.')[2]
                    for a in node.names:
                        key = (mod, a.name) if mod else a.name  # `from mnist_course import cli`: a module
                        if (mod or a.name) not in ANYWHERE and where.get(key, -1) > i:
                            found.add((nb, mod or a.name, a.name))
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        mod = a.name.partition('.')[2]
                        if a.name.startswith('mnist_course.') and mod not in ANYWHERE and where.get(mod, -1) > i:
                            found.add((nb, mod, mod))
    return found

def test_chapters_import_only_what_earlier_chapters_define():
    "No notebook imports a name that a later notebook defines (the checkers and the appendix aside)."
    assert _forward_imports() == set(), sorted(_forward_imports())

# Cells the site does not show: `#| hide`, `#| export` (its code is in the module; `#| exports` shows it), `#| exporti`,
# and Quarto's `echo: false` and `include: false`.
HIDDEN = re.compile(r'^#\|\s*(hide|export(?!s)\b|exporti|include:\s*false|echo:\s*false)', re.M)

def _defined_and_used(src:str) -> tuple[set, set]:
    "The names a cell binds anywhere (assignments, defs, parameters, imports) and the names it reads."
    from IPython.core.inputtransformer2 import TransformerManager  # `%time` and `!ls` lines as Python
    defined, used = set(), set()
    # `%time f(x)` and `%%timeit -n 3` run Python that the transformer would hide in a string
    src = re.sub(r'^(\s*)%%?(?:time|timeit)\b(?:\s+-\w+(?:\s+\d+)?)*\s*', r'\1', src, flags=re.M)
    for n in ast.walk(ast.parse(TransformerManager().transform_cell(src))):
        if isinstance(n, ast.Name): (used if isinstance(n.ctx, ast.Load) else defined).add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): defined.add(n.name)
        elif isinstance(n, ast.arg): defined.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split('.')[0] for a in n.names}
        elif isinstance(n, ast.ExceptHandler) and n.name: defined.add(n.name)
    return defined, used

def hidden_names(cells:list) -> dict:
    "{name: first visible cell using it} for each name visible cells read that only hidden cells define."
    shown, hidden, used = set(), set(), {}
    for c in cells:
        if c['cell_type'] != 'code': continue
        defined, reads = _defined_and_used(_src(c))
        if HIDDEN.search(_src(c)): hidden |= defined
        else:
            shown |= defined
            for name in reads: used.setdefault(name, c.get('id'))
    return {n: cid for n, cid in used.items() if n in hidden - shown}

def test_hidden_names_finds_a_name_only_a_hidden_cell_defines():
    "The check below catches what a site reader would meet: a NameError for a helper they were not shown."
    cell = lambda s: dict(cell_type='code', id=str(len(s)), source=s)
    cells = [cell('#| hide\nimport math\nfrom x import helper'), cell('#| export\nLIMIT = 3'),
             cell('#| exports\ndef f(n): return helper(n) + math.pi'), cell('%time f(LIMIT)')]
    test = hidden_names(cells)
    assert set(test) == {'helper', 'math', 'LIMIT'}, test
    assert hidden_names(cells[2:] + [cell('import math\nLIMIT, helper = 3, abs')]) == {}

@pytest.mark.parametrize('nb', NBS)
def test_every_name_a_shown_cell_uses_is_shown(nb):
    "A reader who copies the site's code gets no NameError: no shown cell uses a name only hidden cells define."
    assert hidden_names(_cells(nb)) == {}, f"{nb}: names (and the first shown cell using each) defined only in hidden cells"

@pytest.mark.parametrize('nb', CHAPTERS)
def test_chapter_ends_with_summary_and_exercises(nb):
    "`## Summary` (3-6 bullets), then `## Exercises` (3 or more), a self-check the learner runs, and a link to the solutions."
    md = '\n'.join(_src(c) for c in _cells(nb) if c['cell_type'] == 'markdown')
    assert '\n## Summary' in '\n' + md and '\n## Exercises' in '\n' + md, f"{nb} has no ## Summary or ## Exercises"
    summary = md.split('## Summary', 1)[1].split('## Exercises', 1)[0]
    assert 3 <= len(re.findall(r'^- ', summary, re.M)) <= 6, f"{nb}: the Summary should have 3-6 bullets"
    exercises = md.split('## Exercises', 1)[1]
    assert len(re.findall(r'^\d+\. ', exercises, re.M)) >= 3, f"{nb}: fewer than three exercises"
    assert '10_solutions.ipynb#' in exercises, f"{nb}: the exercises do not link to their solutions"
    checks = [c for c in _cells(nb) if c['cell_type'] == 'code' and 'from mnist_course.exercises import check_' in _src(c)]
    assert checks, f"{nb}: no self-check cell"

def test_every_self_check_is_solved_and_tested():
    "Each self-check a chapter calls is defined in the solutions notebook, called there with a right and a wrong answer."
    used = {m for nb in NBS for c in _cells(nb) for m in re.findall(r'import (check_\w+)', _src(c))}
    sol = '\n'.join(_src(c) for c in _cells('10_solutions.ipynb'))
    for name in used:
        assert f'def {name}(' in sol, f"{name} is not defined in 10_solutions.ipynb"
        assert len(re.findall(rf'test_eq\({name}\(', sol)) >= 2, f"{name}: the solutions notebook tests it fewer than twice"
    for nb in CHAPTERS:
        anchor = re.search(r'10_solutions\.ipynb#([\w-]+)', '\n'.join(_src(c) for c in _cells(nb))).group(1)
        heads = [re.sub(r'[^\w\s-]', '', h).strip().lower().replace(' ', '-') for h in re.findall(r'^## (.+)$', sol, re.M)]
        assert anchor in heads, f"{nb} links to #{anchor}, which is not a section of the solutions"

def test_chapter_0_shows_a_figure_within_its_first_12_cells():
    first = next(i for i, c in enumerate(_cells('00_data.ipynb')) if any('image/png' in o.get('data', {}) for o in c.get('outputs', [])))
    assert first < 12, f"chapter 0's first figure is in cell {first}"

def test_every_parameter_is_documented():
    "docments: every parameter of every public function or method of the package has its own comment.\n\n    (NamedTuples are left out: docments does not read their fields' comments, which their source has.)"
    from fastcore.docments import docments
    import importlib, pkgutil, mnist_course
    missing = []
    for m in pkgutil.iter_modules(mnist_course.__path__):
        if m.name.startswith('_'): continue
        mod = importlib.import_module(f'mnist_course.{m.name}')
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name)
            if getattr(obj, '__module__', None) != mod.__name__: continue
            if inspect.isfunction(obj): fns = [obj]
            elif inspect.isclass(obj) and not issubclass(obj, BaseException) and not hasattr(obj, '_fields'):  # its __init__ (dataclasses and NamedTuples: the class itself) and public methods
                own = obj.__init__ if '__init__' in vars(obj) and not hasattr(obj, '__dataclass_fields__') else obj
                fns = [own] * bool(inspect.signature(obj).parameters) + [v for k, v in vars(obj).items() if inspect.isfunction(v) and not k.startswith('_')]
            else: continue
            for f in fns:
                d = docments(f)
                params = [p for p in inspect.signature(f).parameters.values() if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
                missing += [f'{mod.__name__}.{getattr(f, "__qualname__", name)}({p.name})' for p in params if not d.get(p.name)]
    assert missing == [], f"parameters without a docments comment: {missing}"

def test_chapter_4_does_not_retrain_chapter_3s_model(tmp_path, mnist_root):
    "Full mode: with chapter 3's model saved in the course cache, chapter 4 loads it and trains nothing."
    (tmp_path/'MNIST').symlink_to(mnist_root/'MNIST', target_is_directory=True)
    code = (f"from mnist_course.model import Net; from mnist_course.training import History, seed_everything\n"
            f"from mnist_course.utils import model_cache_path, save_trained\n"
            f"seed_everything(1); h = History(test_acc=[11.0] * 5, test_losses=[2.3] * 5)\n"
            f"save_trained(model_cache_path(root={str(tmp_path)!r}), Net(), h)")  # the full-mode key: 60,000 x 10,000, 5 epochs
    subprocess.run([sys.executable, '-c', code], check=True)
    env = {k: v for k, v in os.environ.items() if k != 'MNIST_COURSE_QUICK'}
    env.update(MNIST_COURSE_DATA=str(tmp_path), MPLBACKEND='Agg')
    out = tmp_path/'ch4.ipynb'
    p = subprocess.run([str(BIN/'jupyter'), 'nbconvert', '--to', 'notebook', '--execute', str(REPO/'nbs'/'04_error_analysis.ipynb'),
                        '--output', str(out), '--ExecutePreprocessor.timeout=600'], cwd=REPO/'nbs', env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    text = '\n'.join(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', ''))
                     for c in json.loads(out.read_text())['cells'] if c['cell_type'] == 'code' for o in c['outputs'])
    assert 'loaded the trained model Net-s5-seed1-5ep-60000x10000.pt' in text, text[:2000]
    assert 'Epoch 1' not in text and 'saved the trained model' not in text
    assert "'test accuracy after 5 epochs: 11.00%'" in text  # the saved model's own history, not a new run's
