"""The documentation site, built from the notebooks and opened in a real browser (headless Chromium).

Every page must load; no internal link, section it names, or image may be broken; every chapter must show as many
figures as its notebook holds, the pages must show the source of the code the course teaches (cells marked
`#| exports`), and code within the 100-character limit, and every table, must show whole at 1280 pixels. Screenshots of the home page
and a chapter are saved in `screenshots/`.
"""
import functools, http.server, os, json, re, shlex, shutil, subprocess, sys, threading, urllib.error, urllib.request
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get('CI'), reason='Chromium is not installed (apt-get install chromium); .ci/run installs it')

# page: the source lines a reader must find there in a code block
SOURCES = {'01_model.html': ['def forward(self'], '02_training.html': ['def train(', 'def test('],
           '04_error_analysis.html': ['def get_incorrect_test_predictions('], '06_fast_training.html': ['def augment(', 'def fast_fit('],
           '06a_small_model.html': ['class SmallNet(', 'def layers_of(', 'def step_profile('],
           '08_command.html': ['class RunLock:', 'def publish('], '08a_training_run.html': ['def train_run('],
           '08b_command_line.html': ['def main(', 'def start('],
           '08c_distributed.html': ['def rank_share(', 'def ddp_step(', 'def ddp_fast_fit('],
           '08d_launch.html': ['def train_command(']}

# the code blocks (not outputs) whose lines are all within 100 characters but that scroll sideways
CUT_CODE = '''els => els.filter(e => !e.closest('.cell-output'))
  .map(e => [Math.max(...e.innerText.split('\\n').map(l => l.length)), e.scrollWidth, e.clientWidth])
  .filter(([n, scroll, shown]) => n <= 100 && scroll > shown)'''

def figures_in(nb: Path) -> int:
    "How many PNG figures the notebook shows (outputs of cells that are not hidden)."
    n = 0
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'code' or re.search(r'^\s*#\|\s*(hide|output:\s*false)', ''.join(c['source']), re.M): continue
        n += sum('image/png' in o.get('data', {}) for o in c.get('outputs', []))
    return n

class Served:
    "Serve `folder` on 127.0.0.1 (a free port) while the block runs."
    def __init__(self, folder):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a): pass
        handler = functools.partial(Quiet, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
    def __enter__(self): threading.Thread(target=self.httpd.serve_forever, daemon=True).start(); return self
    def __exit__(self, *a): self.httpd.shutdown(); self.httpd.server_close()

def _status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r: return r.status
    except urllib.error.HTTPError as e: return e.code

def check_site(site: Path, shots: Path | None = None) -> list[str]:
    "Open every page of `site` in Chromium; return the problems found (empty when the site is sound)."
    from playwright.sync_api import sync_playwright
    problems, checked, html_of = [], {}, {}
    pages = sorted(p.name for p in site.glob('*.html'))
    with Served(site) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        for name in pages:
            resp = page.goto(srv.url + name, wait_until='load')
            if not resp or not resp.ok: problems.append(f'{name}: HTTP {resp.status if resp else "no response"}'); continue
            page.wait_for_load_state('networkidle')
            for href in page.eval_on_selector_all('a[href]', 'els => els.map(e => e.href)'):
                target, _, frag = href.partition('#')
                if not target.startswith(srv.url): continue
                if target not in checked: checked[target] = _status(target)
                if checked[target] != 200: problems.append(f'{name}: broken link to {target[len(srv.url):]} (HTTP {checked[target]})'); continue
                if frag and target.endswith('.html'):  # a link to a section: the section must be there
                    if target not in html_of: html_of[target] = urllib.request.urlopen(target, timeout=10).read().decode()
                    if f'id="{frag}"' not in html_of[target]: problems.append(f'{name}: link to a missing section {target[len(srv.url):]}#{frag}')
            imgs = page.eval_on_selector_all('img', 'els => els.map(e => [e.getAttribute("src").slice(0, 60), e.complete && e.naturalWidth > 0])')
            problems += [f'{name}: image {src!r} does not load' for src, ok in imgs  # the site's own images (a Colab
                         if not ok and not src.startswith(('http://', 'https://'))]  # badge's is fetched from colab.research.google.com)
            nb = REPO/'nbs'/name.replace('.html', '.ipynb')
            want, shown = figures_in(nb) if nb.exists() else 0, sum(ok for _, ok in imgs)
            if shown < want: problems.append(f'{name}: shows {shown} figures, its notebook has {want}')
            if not page.locator('#quarto-sidebar, nav.sidebar, .sidebar').count(): problems.append(f'{name}: no sidebar')
            # code that keeps to the 100-character limit shows whole at 1280 pixels, with no scroll bar
            wide = page.eval_on_selector_all('pre.sourceCode', CUT_CODE)
            problems += [f'{name}: a code block of lines up to {n} characters needs a scroll bar '
                         f'({scroll} pixels in {shown})' for n, scroll, shown in wide]
            tables = page.eval_on_selector_all('table', 'els => els.map(e => [e.rows.length, Math.round(e.getBoundingClientRect().width), '
                                               'e.parentElement.clientWidth]).filter(([r, w, room]) => w > room + 1)')
            problems += [f'{name}: a table of {r} rows is {w} pixels wide in a column of {room}' for r, w, room in tables]
            for needle in SOURCES.get(name, []):
                if not page.locator('pre', has_text=needle).count(): problems.append(f'{name}: does not show the source `{needle}`')
            if shots and name == 'index.html': page.screenshot(path=str(shots/'index.png'))
            if shots and name == '08_command.html':  # a block with a line of exactly 100 characters, whole
                block = page.locator('pre.sourceCode', has_text='def space_needed(').first
                block.evaluate('e => { document.documentElement.style.scrollBehavior = "auto"; '
                               'e.scrollIntoView({block: "center"}); }')
                page.wait_for_timeout(300)
                page.screenshot(path=str(shots/'08_command.png'))
            if shots and name == '03_evaluation.html':  # an API entry (show_doc) with the figure of its example below
                page.locator('h3', has_text='display_model_stats').first.evaluate(
                    'e => { document.documentElement.style.scrollBehavior = "auto"; e.scrollIntoView({block: "start"}); }')
                page.wait_for_timeout(300)
                page.screenshot(path=str(shots/'03_evaluation.png'))
        browser.close()
    return problems

def _tree(folder: Path) -> dict:
    "Every file under `folder`, with its size and modification time."
    return {str(f.relative_to(folder)): (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.rglob('*'))}

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    dest = tmp_path_factory.mktemp('docs')/'site'
    readme = (REPO/'README.md').read_text()  # the command the README gives, as a contributor runs it
    cmd = re.search(r'<!-- docs-command -->\s*```sh\n(.+?)\n```', readme).group(1)
    mine = not (REPO/'_proc').exists()  # a _proc/ of the user's in the clone, where nbdev would write its own
    if mine: (REPO/'_proc').mkdir(); (REPO/'_proc'/'keep.txt').write_text("the user's")
    before = _tree(REPO/'_proc'), (REPO/'nbs'/'sidebar.yml').read_bytes()
    try:
        p = subprocess.run(f"{cmd} --dest {shlex.quote(str(dest))}", shell=True, capture_output=True, text=True, cwd=REPO)
        assert (_tree(REPO/'_proc'), (REPO/'nbs'/'sidebar.yml').read_bytes()) == before, "the build changed the clone"
    finally:
        if mine: shutil.rmtree(REPO/'_proc')
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'built the documentation site' in p.stdout
    return dest

def test_the_builder_touches_nothing_it_did_not_make(tmp_path):
    "Outside a clone it refuses before anything; an existing --dest that it did not build is refused, not replaced."
    elsewhere = tmp_path/'elsewhere'; (elsewhere/'.ci').mkdir(parents=True); (elsewhere/'_proc').mkdir()
    shutil.copy(REPO/'.ci'/'docs.py', elsewhere/'.ci'/'docs.py'); (elsewhere/'_proc'/'keep.txt').write_text("the user's")
    p = subprocess.run([sys.executable, '.ci/docs.py'], cwd=elsewhere, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith(f'docs.py: {elsewhere} is not a clone of mnist-course'), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and sorted(p.name for p in elsewhere.iterdir()) == ['.ci', '_proc']
    assert (elsewhere/'_proc'/'keep.txt').read_text() == "the user's"
    (tmp_path/'papers').mkdir(); (tmp_path/'papers'/'thesis.tex').write_text('years of work')
    p = subprocess.run([sys.executable, REPO/'.ci'/'docs.py', '--dest', tmp_path/'papers'], capture_output=True, text=True)
    assert p.returncode == 2 and 'is not a site this script built' in p.stderr, p.stderr
    assert _tree(tmp_path/'papers') and (tmp_path/'papers'/'thesis.tex').read_text() == 'years of work'

def test_site_contents(site):
    "Home, every chapter in order in the sidebar, search, styles, and show_doc API entries."
    chapters = sorted(p.stem for p in (REPO/'nbs').glob('[0-9]*.ipynb'))
    assert sorted(p.stem for p in site.glob('*.html')) == sorted(chapters + ['index', 'contributing'])
    assert (site/'search.json').exists() and (site/'styles.css').exists()
    html = (site/'09_fetching.html').read_text()
    assert 'fetch_mnist' in html and 'check_file' in html
    side = (REPO/'nbs'/'sidebar.yml').read_text()
    assert [l.strip(' -\n') for l in side.splitlines() if '.ipynb' in l] == ['index.ipynb'] + [c + '.ipynb' for c in chapters] + ['contributing.ipynb']

def test_site_in_browser(site):
    shots = REPO/'screenshots'; shots.mkdir(exist_ok=True)
    assert check_site(site, shots) == []
    for s in ('index.png', '03_evaluation.png', '08_command.png'): assert (shots/s).stat().st_size > 10_000

def test_browser_check_catches_breakage(site, tmp_path):
    "A broken internal link, a removed figure and a removed source listing are all reported."
    broken = tmp_path/'site'; shutil.copytree(site, broken)
    idx = broken/'index.html'
    idx.write_text(idx.read_text().replace('href="01_model.html"', 'href="01_missing.html"', 1))
    ev = broken/'03_evaluation.html'
    ev.write_text(re.sub(r'<img(?![^>]*src="https?:)[^>]*>', '', ev.read_text(), count=1))  # a figure of the site's own
    fast = broken/'06_fast_training.html'
    drop = lambda m: '' if 'def fast_fit(' in re.sub(r'<[^>]+>', '', m.group(0)) else m.group(0)  # the listing, whatever its highlighting
    fast.write_text(re.sub(r'<pre[^>]*>.*?</pre>', drop, fast.read_text(), flags=re.S))
    ch1 = broken/'01_model.html'
    ch1.write_text(ch1.read_text().replace('10_solutions.html#chapter-1-model', '10_solutions.html#chapter-1-modle'))
    css = broken/'styles.css'
    css.write_text(css.read_text() + '\ndiv.sourceCode pre.sourceCode { font-size: 1rem; }\n'  # code too large for the column
                   'td code { white-space: nowrap; }\n')  # a table's code that cannot break: wider than the column
    problems = check_site(broken)
    assert any('broken link to 01_missing.html' in p for p in problems), problems
    assert any(p.startswith('03_evaluation.html: shows') for p in problems), problems
    assert '06_fast_training.html: does not show the source `def fast_fit(`' in problems, problems
    assert '01_model.html: link to a missing section 10_solutions.html#chapter-1-modle' in problems, problems
    assert any(p.startswith('02_training.html: a code block of lines up to') for p in problems), problems
    assert any(p.startswith('07_checkpoints.html: a table of') for p in problems), problems

def _stroke(page, start, end, steps=20):
    "A vertical line down the pad, with the mouse, from `start` to `end` (fractions of its height)."
    box = page.locator('.mnist-demo canvas.pad').bounding_box()
    x = box['x'] + box['width'] / 2
    page.mouse.move(x, box['y'] + start * box['height']); page.mouse.down()
    for i in range(1, steps + 1): page.mouse.move(x, box['y'] + (start + (end - start) * i / steps) * box['height'])
    page.mouse.up()

def _touch_stroke(page, start, end, steps=20):
    "The same line drawn with a finger: touch events, as a phone's screen sends them."
    box = page.locator('.mnist-demo canvas.pad').bounding_box()
    cdp, x = page.context.new_cdp_session(page), box['x'] + box['width'] / 2
    at = lambda f: [dict(x=x, y=box['y'] + f * box['height'])]
    cdp.send('Input.dispatchTouchEvent', dict(type='touchStart', touchPoints=at(start)))
    for i in range(1, steps + 1):
        cdp.send('Input.dispatchTouchEvent', dict(type='touchMove', touchPoints=at(start + (end - start) * i / steps)))
    cdp.send('Input.dispatchTouchEvent', dict(type='touchEnd', touchPoints=[]))

def test_draw_page(site, mnist_root):
    """Chapter 6c's pad, served by a local HTTP server with every other address refused (offline): `predict` agrees
    with the PyTorch model on 500 test digits, a drawn stroke (mouse, then finger) reads 1 as PyTorch reads the same
    canvas, and "Clear" empties the reading."""
    import base64, io, torch
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from mnist_course.draw import load_weights
    from mnist_course.export import to_mnist
    from mnist_course.fast import load_tensors, normalize
    net, facts = load_weights(REPO/'nbs'/'draw'/'model.pt')
    data = load_tensors(mnist_root, n_train=1, n_test=500)
    x = data.x_test.float() / 255
    with torch.no_grad(): want = net(normalize(x)).argmax(1)  # float32: the page's ONNX model computes in float32
    with Served(site) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={'width': 1280, 'height': 900}, has_touch=True).new_page()
        refused, failed, errors = [], [], []
        page.route('**/*', lambda r: r.continue_() if r.request.url.startswith(srv.url) else (refused.append(r.request.url), r.abort()))
        page.on('requestfailed', lambda r: failed.append(r.url))
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.goto(srv.url + '06c_draw.html', wait_until='load')
        page.wait_for_function('window.mnistDemo !== undefined')
        got = page.evaluate('async xs => { await window.mnistDemo.ready; const out = [];'
                            ' for (const x of xs) out.push(await window.mnistDemo.predict(x)); return out; }',
                            x.reshape(len(x), -1).tolist())
        got = torch.tensor(got)
        assert got.shape == (500, 10) and torch.allclose(got.sum(1), torch.ones(500), atol=1e-4), got.shape
        agree, right = (got.argmax(1) == want).float().mean().item(), (got.argmax(1) == data.y_test).float().mean().item()
        assert agree >= 0.99 and right >= 0.97, (agree, right)
        for draw in (_stroke, _touch_stroke):
            page.click('.mnist-demo button.clear')
            assert page.inner_text('#prediction') == ''
            y0 = page.evaluate('window.scrollY')
            draw(page, 0.15, 0.85)
            page.wait_for_function("document.getElementById('prediction').textContent !== ''")
            assert page.inner_text('#prediction') == '1', (draw.__name__, page.inner_text('#prediction'))
            assert page.evaluate('window.scrollY') == y0, f"{draw.__name__} scrolled the page"
            # the browser's preprocessing of this very canvas, against PyTorch's
            png = page.evaluate("document.querySelector('.mnist-demo canvas.pad').toDataURL('image/png')")
            canvas = Image.open(io.BytesIO(base64.b64decode(png.split(',', 1)[1]))).convert('RGBA')
            digit = to_mnist(torch.from_numpy(__import__('numpy').array(canvas)))
            shown = page.evaluate("Array.from(document.querySelector('.mnist-demo canvas.preview').getContext('2d')"
                                  ".getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))")
            assert (torch.tensor(shown).reshape(1, 28, 28) / 255 - digit).abs().max() <= 1 / 255 + 1e-6  # preview: 8 bits
            with torch.no_grad(): assert net(normalize(digit[None])).argmax().item() == 1
        page.click('.mnist-demo button.clear')
        assert page.inner_text('#prediction') == '' and page.inner_text('.mnist-demo .pct') == ''
        browser.close()
    assert not errors, errors
    assert not [u for u in failed if u.startswith(srv.url)], failed  # every file of the pad is in the site
    assert not [u for u in refused if '/draw/' in u], refused
