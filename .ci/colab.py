#!/usr/bin/env python3
"""Give every chapter its "Open in Colab" badge and its install cell, both made from settings.ini's git_url and branch.

The badge is a markdown cell right after the title; the install cell, hidden from the site (`#| hide`), is the first code
cell after `#| default_exp` (or the first code cell): it installs the course package from the repository when it is
missing (Colab, a Jupyter without it) and does nothing where it is installed. Whoever publishes the repository changes
git_url (and branch) in settings.ini and runs this script. `--check` exits 1 when a notebook differs from what it makes.
"""
import configparser, json, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BADGE_ID, INSTALL_ID = 'colab0badge', 'colab0install'

def settings():
    cfg = configparser.ConfigParser(); cfg.read(REPO/'settings.ini')
    return cfg['DEFAULT']['git_url'].rstrip('/'), cfg['DEFAULT']['branch']

def badge(nb_name: str) -> str:
    url, branch = settings()
    path = url.split('github.com/', 1)[1]
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/{branch}/nbs/{nb_name})")

def install_cell() -> str:
    url, branch = settings()
    return ("#| hide\n"
            "# Colab, or a Jupyter without the course package: install it\n"
            "# from the course's repository (a no-op where it is installed)\n"
            "import importlib, importlib.util, subprocess, sys\n"
            "if importlib.util.find_spec('mnist_course') is None:\n"
            "    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',\n"
            f"                    'git+{url}@{branch}'], check=True)\n"
            "    importlib.invalidate_caches()")

def chapters(): return sorted(p for p in (REPO/'nbs').glob('[0-9]*.ipynb'))

def _cell(kind, id, src):
    c = dict(cell_type=kind, id=id, metadata={}, source=src.splitlines(keepends=True))
    if kind == 'code': c.update(execution_count=None, outputs=[])
    return c

def with_colab(nb: dict, name: str) -> dict:
    "`nb` with its badge and install cell in place (added, or rewritten from settings.ini)."
    cells = [c for c in nb['cells'] if c.get('id') not in (BADGE_ID, INSTALL_ID)]
    title = next(i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith('# '))
    cells.insert(title + 1, _cell('markdown', BADGE_ID, badge(name)))
    exp = next((i for i, c in enumerate(cells) if c['cell_type'] == 'code' and ''.join(c['source']).startswith('#| default_exp')), -1)
    cells.insert(exp + 1, _cell('code', INSTALL_ID, install_cell()))
    return dict(nb, cells=cells)

def main(check=False):
    stale = []
    for p in chapters():
        nb = json.loads(p.read_text(encoding='utf-8'))
        new = with_colab(nb, p.name)
        if new != nb:
            stale.append(p.name)
            if not check: p.write_text(json.dumps(new, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    if check and stale: print(f"badge or install cell missing or out of date in {stale}: run .ci/colab.py", file=sys.stderr); return 1
    if not check: print(f"updated {stale or 'nothing'}")
    return 0

if __name__ == '__main__': sys.exit(main('--check' in sys.argv))
