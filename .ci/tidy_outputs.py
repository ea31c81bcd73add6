#!/usr/bin/env python3
"""Collapse progress-bar redraws in notebooks' saved outputs to what Jupyter shows: each bar's final line.

tqdm redraws its bar with a carriage return; a notebook saves every redraw as its own output (hundreds an epoch),
which the documentation site would print line by line. Run after executing a chapter, before `nbdev_clean`:
`.venv/bin/python .ci/tidy_outputs.py nbs/05_s5.ipynb`. With `--check` it changes nothing and exits 1 when a
notebook needs tidying.
"""
import argparse, json, sys
from pathlib import Path

def _collapse(text):
    "Each line as a terminal leaves it: the part after its last carriage return."
    return '\n'.join(l.rstrip('\r').rsplit('\r', 1)[-1] for l in text.split('\n'))

def tidy(outputs):
    "Merge consecutive outputs of the same stream and collapse their redraws."
    res = []
    for o in outputs:
        if o.get('output_type') == 'stream' and res and res[-1].get('output_type') == 'stream' and res[-1]['name'] == o['name']:
            res[-1]['text'] = ''.join(res[-1]['text']) + ''.join(o['text'])
        else: res.append(dict(o))
    for o in res:
        if o.get('output_type') == 'stream': o['text'] = _collapse(''.join(o['text'])).splitlines(keepends=True)
    return res

def tidy_notebook(path:Path, check=False) -> bool:
    "Tidy `path` in place (atomically); True when it needed it."
    nb = json.loads(path.read_text(encoding='utf-8'))
    changed = False
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        new = tidy(c['outputs'])
        if new != c['outputs']: c['outputs'], changed = new, True
    if changed and not check:
        from mnist_course.data import atomic_write  # imported here: torch loads with it, and --check needs none of it
        atomic_write(path, lambda f: f.write((json.dumps(nb, indent=1, ensure_ascii=False) + '\n').encode('utf-8')))
    return changed

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--check', action='store_true', help='change nothing; exit 1 when a notebook needs tidying')
    a = ap.parse_args()
    for p in a.notebooks:
        if not p.is_file(): sys.exit(f"tidy_outputs: no such notebook: {p}")
    need = [str(p) for p in a.notebooks if tidy_notebook(p, a.check)]
    if need: print(('needs tidying (run .ci/tidy_outputs.py on it): ' if a.check else 'tidied: ') + ', '.join(need))
    sys.exit(1 if a.check and need else 0)
