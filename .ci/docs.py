#!/usr/bin/env python3
"""Build the documentation site from this clone's notebooks: a contributor's tool, not part of the course package.

nbdev turns `nbs/` into `_proc/`: `show_doc` tables, hidden cells removed, the sidebar in notebook order. Where Quarto
is installed, nbdev's own `nbdev_docs` renders it, as nbdev users expect; where it is not (Quarto cannot be installed on
every machine), smalldocs, a pure-Python renderer of Quarto projects, renders the same `_proc/` with the same
`_quarto.yml`. Chapter 6c's drawing pad is then added to the site's `draw/` folder by the course's own
`build_page`: its JavaScript module, the model of `nbs/draw/model.pt` exported to ONNX, and onnxruntime-web from npm
(checked by SHA-256), so that the built site works offline.

It touches nothing it did not make. It first checks that it sits in a clone of the course (`settings.ini` naming
`mnist_course`, and `nbs/`). nbdev writes `_proc/`, `nbs/sidebar.yml`, `nbs/nbdev.yml` and `_modidx.py` where it
runs, so the build runs in a temporary copy of the clone's sources, and neither the clone nor the folder it is started
from changes (a `_proc/` of yours stays as it was). The finished site replaces the old one in one rename, so a failed
build never leaves half a site, and it replaces only a site this script built (it leaves a `.mnist-course-site` mark
in it; a site built before the mark, with its `index.html` and `search.json`, counts too): an existing `--dest` that
holds anything else is refused, never deleted.

Run it with the Python of the development install (`pip install -e ".[dev]"`), whose folder holds `nbdev_docs` and
`smalldocs`: `.venv/bin/python .ci/docs.py [--dest DIR]` (default: `_docs/` in the clone). Exit status 0 when built;
1, with a one-line message, when the development tools are missing; 2 when it is not in a clone, or `--dest` holds
something it did not build; a renderer's failure keeps its own message.
"""
import argparse, os, shutil, subprocess, sys, tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = '.mnist-course-site'  # in every site this script builds: the one kind of folder it may replace
SOURCES = ('settings.ini', 'setup.py', '_quarto.yml', 'README.md', 'LICENSE', 'nbs', 'mnist_course')

def refuse(msg: str):
    print(f"docs.py: {msg}", file=sys.stderr)
    sys.exit(2)

def check_clone(repo: Path):
    "Refuse to run outside a clone of the course, before anything is touched."
    ini = repo/'settings.ini'
    if not (ini.is_file() and 'lib_name = mnist_course' in ini.read_text() and (repo/'nbs').is_dir()):
        refuse(f"{repo} is not a clone of mnist-course (it needs settings.ini naming mnist_course, and nbs/): "
               "run the docs.py of a clone, in that clone")

def check_dest(dest: Path, given: bool):
    "Refuse a `dest` that is not a site this script (or, before it marked them, nbdev) built: it holds the user's."
    site = dest.is_dir() and ((dest/MARK).exists() or (dest/'index.html').exists() and (dest/'search.json').exists())
    if dest.exists() and not (site or dest.is_dir() and not any(dest.iterdir())):
        refuse(f"{'--dest ' if given else 'the site folder '}{dest} exists and is not a site this script built (no "
               f"{MARK} in it): {'choose a new folder' if given else 'give --dest DIR'}, or move that one away yourself")

def copy_sources(repo: Path, work: Path) -> Path:
    "The clone's sources that nbdev reads, copied into `work` (a folder this script made)."
    skip = shutil.ignore_patterns('_proc', '_docs', '.ipynb_checkpoints', '__pycache__')
    for name in SOURCES:
        src = repo/name
        if src.is_dir(): shutil.copytree(src, work/name, ignore=skip)
        elif src.exists(): shutil.copy2(src, work/name)
    return work

def nbdev_proc(cfg) -> Path:
    "nbdev's `_pre_docs` without its Quarto install: nbdev.yml, index and sidebar refreshed; `_proc/` made."
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar, proc_nbs
    import nbdev.doclinks
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    return Path(proc_nbs(cfg.nbs_path, n_workers=0))

def add_pad(built: Path, nbs: Path):
    "Chapter 6c's drawing pad in the site's `draw/`: its module, the model of `nbs/draw/model.pt`, onnxruntime-web."
    from mnist_course.draw import build_page  # the course's own builder: the chapter shows and tests it
    build_page(built/'draw', nbs/'draw'/'model.pt')

def replace_dir(built: Path, dest: Path):
    "Put a copy of `built` at `dest` in one rename: a half-built site never stands where the last good one stood."
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f'.{dest.name}.'))
    shutil.copytree(built, tmp/'site')
    (tmp/'site'/MARK).write_text("built by mnist-course's .ci/docs.py, which may replace this folder\n")
    if dest.exists(): dest.rename(tmp/'old')
    (tmp/'site').rename(dest)
    shutil.rmtree(tmp)

def build(dest: Path | None = None) -> str:
    "Build the site into `dest` (default: `_docs/` in the clone); return the renderer used."
    from nbdev.config import get_config
    check_clone(REPO)
    given, dest = dest is not None, (dest or REPO/'_docs').resolve()
    check_dest(dest, given)
    bin_ = Path(sys.executable).parent
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='mnist-course-docs.') as work:
        os.chdir(copy_sources(REPO, Path(work)))  # nbdev's tools work from the root of the (copied) clone
        try:
            cfg = get_config()
            if shutil.which('quarto'):
                subprocess.run([str(bin_/'nbdev_docs')], check=True)
                built, renderer = cfg.config_path/'_docs', 'quarto (nbdev_docs)'
            else:
                built = nbdev_proc(cfg)/'_docs'
                subprocess.run([str(bin_/'smalldocs'), 'render', str(built.parent)], check=True,
                               stdout=subprocess.DEVNULL)
                renderer = 'smalldocs (Quarto is not installed here)'
            add_pad(built, cfg.nbs_path)
            replace_dir(built, dest)
        finally:
            os.chdir(here)
    print(f"built the documentation site in {dest} with {renderer}")
    return renderer

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dest', type=Path, help="where to put the site (default: _docs in the clone)")
    args = p.parse_args()
    check_clone(REPO)
    try: import nbdev.config  # noqa: F401
    except ImportError:
        sys.exit("docs.py needs the development tools: run it with the Python of `pip install -e '.[dev]'` "
                 "(.venv/bin/python .ci/docs.py)")  # exit status 1
    sys.exit(0 if build(args.dest.expanduser() if args.dest else None) else 1)
