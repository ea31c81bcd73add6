#!/usr/bin/env python3
"""Build the documentation site from the notebooks, into _docs/ (or --dest DIR).

nbdev's own processing turns nbs/ into _proc/ (show_doc pages, hidden cells removed, sidebar from the notebook order).
Where Quarto is installed, `nbdev_docs` renders it, as nbdev users expect. Where it is not (Quarto cannot be installed
on every machine), smalldocs, a pure-Python renderer of Quarto projects, renders the same _proc/ with the same
_quarto.yml. The last line printed says which renderer was used.

    .venv/bin/python .ci/docs.py [--dest DIR]
"""
import argparse, os, shutil, subprocess, sys, tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _nbdev_proc():
    "nbdev's `_pre_docs` without its Quarto install step: refresh nbdev.yml, the index, the sidebar; process into _proc/."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar, proc_nbs
    import nbdev.doclinks
    cfg = get_config()
    shutil.rmtree(cfg.config_path/'_proc', ignore_errors=True)  # no pages left over from renamed notebooks
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    return Path(proc_nbs(cfg.nbs_path, n_workers=0))

def build(dest: Path) -> str:
    os.chdir(REPO)
    if shutil.which('quarto'):
        subprocess.run([str(BIN/'nbdev_docs')], check=True)
        built, renderer = REPO/'_docs', 'quarto (nbdev_docs)'
        if dest.resolve() == built.resolve(): return renderer
    else:
        proc = _nbdev_proc()
        subprocess.run([str(BIN/'smalldocs'), 'render', str(proc)], check=True, stdout=subprocess.DEVNULL)
        built, renderer = proc/'_docs', 'smalldocs (Quarto is not installed here)'
    # replace dest in one step: a half-built site never stands where the last good one stood
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f'.{dest.name}.'))
    shutil.copytree(built, tmp/'site')
    if dest.exists(): dest.rename(tmp/'old')
    (tmp/'site').rename(dest)
    shutil.rmtree(tmp)
    return renderer

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dest', type=Path, default=REPO/'_docs', help='where to put the site (default: _docs)')
    a = p.parse_args(argv)
    renderer = build(a.dest.resolve())
    print(f'built the documentation site in {a.dest} with {renderer}')

if __name__ == '__main__': main()
