"""Training on several processes (chapter 8b): `mnist-course train --nproc 2` on the CPU (Gloo), as a user runs it.

Chapter 8b's own tests show one and two processes holding the same weights after their first steps. Here: a short run
(two epochs on 3,072 images) ends with closely the same test accuracy on one process and on two, at the same global
batch and seed; a two-process run killed with SIGKILL, its processes gone with it, resumes to end as the uninterrupted
two-process run does, bit for bit, and resumes on one process to end closely alike; a bad combination is refused
before any process starts.
"""
import json, shutil, signal, time
from pathlib import Path
import pytest
import torch
from test_reliability import run, start, wait_for_epoch, metrics

ARGS = ['--epochs', '2', '--n-train', '3072', '--n-test', '2000', '--seed', '5', '--no-progress']

def weights(out): return torch.load(out/'model.pt')['state_dict']
def result(out): return json.loads((out/'metrics.json').read_text())

@pytest.fixture(scope='module')
def two(tmp_path_factory, mnist_root):
    "An uninterrupted two-process run."
    out = tmp_path_factory.mktemp('ddp')/'two'
    code, text = run('train', '--out', out, '--nproc', '2', *ARGS); assert code == 0, text
    return out

def test_two_processes_end_like_one(tmp_path, two):
    "Same global batch and seed: the final test accuracies agree closely; metrics.json records world size and backend."
    code, text = run('train', '--out', tmp_path/'one', *ARGS); assert code == 0, text
    one = result(tmp_path/'one')
    assert abs(result(two)['final']['test_acc'] - one['final']['test_acc']) <= 0.5, (result(two)['final'], one['final'])
    assert (result(two)['config']['world_size'], result(two)['config']['backend']) == (2, 'gloo')
    assert (one['config']['world_size'], one['config']['backend']) == (1, None)

def children(pid):
    "The processes whose parent is `pid`, from /proc (Linux)."
    kids = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        if int(fields[1]) == pid: kids.append(int(stat.parent.name))
    return kids

def alive(pid):
    try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError: return False

def test_sigkill_then_resume_equals_uninterrupted(tmp_path, two):
    "The launcher killed with SIGKILL in epoch 2: its processes stop too; --resume ends as the uninterrupted run."
    broken = tmp_path/'broken'
    p = start('train', '--out', broken, '--nproc', '2', *ARGS)
    wait_for_epoch(broken, 1, p)
    ranks = children(p.pid)
    assert len(ranks) == 2, ranks
    time.sleep(0.3)  # into epoch 2
    p.send_signal(signal.SIGKILL); p.wait()
    time.sleep(1.5)  # each process checks for its launcher every half second
    assert [r for r in ranks if alive(r)] == []
    assert not (broken/'metrics.json').exists()
    shutil.copytree(broken, tmp_path/'on_one')
    code, text = run('train', '--out', broken, '--nproc', '2', '--resume', '--no-progress'); assert code == 0, text
    assert metrics(broken) == metrics(two)
    a, b = weights(broken), weights(two)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resumed on one process: the same batches, order and augmentation, so closely the same end (rounding aside)
    code, text = run('train', '--out', tmp_path/'on_one', '--resume', '--no-progress'); assert code == 0, text
    assert result(tmp_path/'on_one')['config']['world_size'] == 1
    assert abs(result(tmp_path/'on_one')['final']['test_acc'] - result(two)['final']['test_acc']) <= 0.5

def test_bad_combination_is_refused_before_any_process_starts(tmp_path, mnist_root):
    "The rest of the combinations are shown refused in chapter 8b."
    code, text = run('train', '--out', tmp_path/'run', '--nproc', '2', '--n-train', '1025', '--no-progress')
    assert code == 2 and 'the last batch of each epoch holds 1 image' in text, text
    assert 'process' not in text.split('error:')[0]  # said by the command itself, not by a process of a group
    assert not (tmp_path/'run').exists()
