#!/usr/bin/env python3
"""Build the documentation site from this clone's notebooks: a contributor's tool, not part of the course package.

nbdev turns `nbs/` into `_proc/`: `show_doc` tables, hidden cells removed, the sidebar in notebook order. Where Quarto
is installed, nbdev's own `nbdev_docs` renders it, as nbdev users expect; where it is not (Quarto cannot be installed on
every machine), smalldocs, a pure-Python renderer of Quarto projects, renders the same `_proc/` with the same
`_quarto.yml`. The finished site replaces the old one in one rename, so a failed build never leaves half a site.

Run it with the Python of the development install (`pip install -e ".[dev]"`), whose folder holds `nbdev_docs` and
`smalldocs`: `.venv/bin/python .ci/docs.py [--dest DIR]` (default: `_docs/` in the clone). Exit status 0 when built;
1, with a one-line message, when the development tools are missing; a renderer's failure keeps its own message.
"""
import argparse, os, shutil, subprocess, sys, tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def nbdev_proc(cfg) -> Path:
    "nbdev's `_pre_docs` without its Quarto install: nbdev.yml, index and sidebar refreshed; `_proc/` made."
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar, proc_nbs
    import nbdev.doclinks
    shutil.rmtree(cfg.config_path/'_proc', ignore_errors=True)  # no pages left over from renamed notebooks
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    return Path(proc_nbs(cfg.nbs_path, n_workers=0))

def replace_dir(built: Path, dest: Path):
    "Put a copy of `built` at `dest` in one rename: a half-built site never stands where the last good one stood."
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f'.{dest.name}.'))
    shutil.copytree(built, tmp/'site')
    if dest.exists(): dest.rename(tmp/'old')
    (tmp/'site').rename(dest)
    shutil.rmtree(tmp)

def build(dest: Path | None = None) -> str:
    "Build the site into `dest` (default: `_docs/` in the clone); return the renderer used."
    from nbdev.config import get_config
    os.chdir(REPO)  # nbdev's tools work from the clone's root
    cfg = get_config()
    dest = dest.resolve() if dest else cfg.config_path/'_docs'
    bin_ = Path(sys.executable).parent
    if shutil.which('quarto'):
        subprocess.run([str(bin_/'nbdev_docs')], check=True)
        built, renderer = cfg.config_path/'_docs', 'quarto (nbdev_docs)'
    else:
        built = nbdev_proc(cfg)/'_docs'
        subprocess.run([str(bin_/'smalldocs'), 'render', str(built.parent)], check=True, stdout=subprocess.DEVNULL)
        renderer = 'smalldocs (Quarto is not installed here)'
    if dest != built.resolve(): replace_dir(built, dest)
    print(f"built the documentation site in {dest} with {renderer}")
    return renderer

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dest', type=Path, help="where to put the site (default: _docs in the clone)")
    args = p.parse_args()
    try: import nbdev.config  # noqa: F401
    except ImportError:
        sys.exit("docs.py needs the development tools: run it with the Python of `pip install -e '.[dev]'` "
                 "(.venv/bin/python .ci/docs.py)")  # exit status 1
    sys.exit(0 if build(args.dest.resolve() if args.dest else None) else 1)
