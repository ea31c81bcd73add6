"""Chapter 6c's `DrawPad`, in a real JupyterLab opened in headless Chromium: a stroke drawn with the mouse on the widget
is read by the PyTorch model in the kernel, and "Clear" empties the reading; a model that fails in the kernel has
its error shown in the pad.

JupyterLab runs on 127.0.0.1 with its configuration, data, runtime and workspace folders in the test's own temporary
folder, so that nothing of the user's Jupyter is read or changed."""
import os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get('CI'), reason='Chromium is not installed (apt-get install chromium); .ci/run installs it')

def _up(url: str, lab: subprocess.Popen, timeout: float = 120) -> None:
    "Wait until the server at `url` answers (or fail when it exits or does not answer in `timeout` seconds)."
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if lab.poll() is not None: raise RuntimeError(f"JupyterLab exited with status {lab.returncode}")
        try:
            with urllib.request.urlopen(url + 'api/status', timeout=5): return
        except OSError: time.sleep(0.2)  # polls the server's own state; the loop ends as soon as it answers
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")

def test_draw_pad_widget_in_jupyterlab(tmp_path):
    import nbformat
    from playwright.sync_api import sync_playwright
    work = tmp_path/'work'; work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import ipywidgets, torch\nfrom mnist_course.draw import DrawPad, load_weights\n"
        f"net, _ = load_weights({str(REPO/'nbs'/'draw'/'model.pt')!r})\n"
        "ipywidgets.VBox([DrawPad(net), DrawPad(torch.nn.Linear(3, 10))])")],  # the second: a model that fails
        metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    nbformat.write(nb, work/'pad.ipynb')
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {**os.environ, **{k: str(tmp_path/k.lower()) for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_DATA_DIR', 'JUPYTER_RUNTIME_DIR',
                                                                'JUPYTERLAB_SETTINGS_DIR', 'JUPYTERLAB_WORKSPACES_DIR')}}
    log = open(tmp_path/'lab.log', 'w')
    lab = subprocess.Popen([str(Path(sys.executable).parent/'jupyter-lab'), '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                            '--IdentityProvider.token=', '--ServerApp.password=', f'--ServerApp.root_dir={work}',
                            '--LabApp.news_url=None', '--allow-root'], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f'http://127.0.0.1:{port}/'
    try:
        _up(url, lab)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox', '--disable-gpu'])
            page = browser.new_page(viewport={'width': 1280, 'height': 1400})
            errors = []
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.goto(url + 'lab/tree/pad.ipynb')
            page.get_by_text('| Idle').first.wait_for(timeout=120_000)  # the kernel has started
            page.click('.jp-Cell .jp-InputArea-editor')
            page.keyboard.press('Shift+Enter')
            pads = page.locator('.mnist-pad canvas.pad')
            pads.nth(1).wait_for(timeout=120_000)
            for pad in pads.nth(0), pads.nth(1):  # a vertical stroke on each
                pad.scroll_into_view_if_needed()
                box = pad.bounding_box()
                x = box['x'] + box['width'] / 2
                page.mouse.move(x, box['y'] + 0.15 * box['height']); page.mouse.down()
                for i in range(1, 21): page.mouse.move(x, box['y'] + (0.15 + 0.7 * i / 20) * box['height'])
                page.mouse.up()
            page.wait_for_function("document.querySelector('.mnist-pad .prediction').textContent !== ''", timeout=60_000)
            assert page.locator('.mnist-pad .prediction').first.inner_text() == '1'
            bad = page.locator('.mnist-pad .err').nth(1)
            page.wait_for_function("document.querySelectorAll('.mnist-pad .err')[1].textContent !== ''", timeout=60_000)
            assert bad.inner_text().startswith('the model could not read it: RuntimeError'), bad.inner_text()
            assert page.locator('.mnist-pad .prediction').nth(1).inner_text() == ''
            assert page.locator('.mnist-pad .pct').first.inner_text().endswith('%')
            shown = page.evaluate("Array.from(document.querySelector('.mnist-pad canvas.preview').getContext('2d')"
                                  ".getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))")
            assert max(shown) == 255 and shown.count(0) > 600, "the kernel's 28 x 28 digit is not shown"  # a thin white 1
            page.locator('.mnist-pad button.clear').first.click()
            assert page.locator('.mnist-pad .prediction').first.inner_text() == ''
            browser.close()
        assert not errors, errors
    finally:
        lab.terminate()
        try: lab.wait(30)
        except subprocess.TimeoutExpired: lab.kill(); lab.wait()
        log.close()
