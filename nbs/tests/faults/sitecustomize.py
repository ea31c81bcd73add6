"""Faults injected on purpose into the `mnist-course` processes a test starts: the test puts this folder on PYTHONPATH,
so Python imports this module at start-up in every process (a process group's ranks included), and sets
$MNIST_COURSE_FAULT to one JSON object:

- `{"step": [E, S], "do": ACTION, "rank": R}`: after optimizer step S (from 1) of epoch E, in the process of rank R
  (default 0). ACTION: a signal name (`SIGKILL`, `SIGTERM`, `SIGINT`) sent to this process; `kill-launcher` (SIGKILL
  to its parent, the launcher of its group, then stay at this step until the launcher's death stops the process);
  `kill-parent` (SIGKILL to its parent, and go on);
  `nan` (the weights become NaN, so the next loss is); `torch-error` (PyTorch itself raises its own `ValueError`, as
  a bug in the course's code would make it); `fill:PATH` (fill the disk by writing PATH); `wait:PATH`
  (pause until PATH exists, so a test acts while the run is at that point).
- `{"replace": [FOLDER, NAME], "do": ACTION}`: just before a file NAME is renamed into a folder named FOLDER (the
  signals and `fill:PATH` as above).
- `{"lockf": "ENOLCK"}`: POSIX locks fail with that error, as on a file system without them.
- `{"mps": true}`: PyTorch reports Apple's MPS available; the first tensor sent to it prints `first tensor to mps`
  and ends the process with exit status 42, so a test sees the whole pre-flight run as on a Mac.
- `{"importing": MODULE, "do": ACTION, "rank": R}`: the action, as this process starts to import MODULE (with "rank":
  only in the group's process of rank R).
- `{"start": ACTION, "rank": R}`: the action, as the group's process of rank R starts (before any of its own code).
- `{"memory": BYTES}`: the machine reports BYTES of memory available (`mnist_course.distributed.available_memory`).
- `{"at_exit": PATH}`: as Python shuts down, the process creates PATH.reached and waits until PATH exists, so a test
  can signal it then.
- `"pids": PATH` (with any of them): each process of a group, and each run a benchmark starts, appends its pid to PATH.

These are the real code paths with one fault each; nothing else of the command is replaced.
"""
import errno, json, os, signal, sys, time

SPEC = json.loads(os.environ.get('MNIST_COURSE_FAULT') or 'null')

def act(what:str):
    "Do the fault `what` now."
    if what == 'kill-parent':
        os.kill(os.getppid(), signal.SIGKILL)
    elif what == 'kill-launcher':  # and stay at this step: the launcher's death, not the epoch's end, must stop the run
        os.kill(os.getppid(), signal.SIGKILL)
        while True: time.sleep(0.1)
    elif what.startswith('fill:'):
        with open(what[5:], 'wb') as f:
            try:
                while True: f.write(b'\0' * (1 << 16)); f.flush()
            except OSError: pass
    elif what.startswith('wait:'):
        while not os.path.exists(what[5:]): time.sleep(0.01)
    else: os.kill(os.getpid(), getattr(signal, what))

def at_step(spec:dict):
    "Count optimizer steps per epoch (epochs from the checkpoints saved or restored) and act at the one named."
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from mnist_course.checkpoint import Checkpointer
    state = dict(epoch=0, step=0)
    save, restore = Checkpointer.save, Checkpointer.restore
    def saved(self, epoch, *a, **k):
        r = save(self, epoch, *a, **k); state.update(epoch=epoch, step=0); return r
    def restored(self, *a, **k):
        r = restore(self, *a, **k); state.update(epoch=r, step=0); return r
    Checkpointer.save, Checkpointer.restore = saved, restored
    def hook(opt, args, kwargs):
        state['step'] += 1
        if [state['epoch'] + 1, state['step']] != spec['step'] or int(os.environ.get('RANK', 0)) != spec.get('rank', 0): return
        if spec['do'] == 'torch-error':  # a batch of 2 predictions against 3 labels: PyTorch's ValueError
            torch.nn.functional.cross_entropy(torch.zeros(2, 10), torch.zeros(3, dtype=torch.long))
        if spec['do'] == 'nan':
            with torch.no_grad():
                for g in opt.param_groups:
                    for p in g['params']: p.fill_(float('nan'))
        else: act(spec['do'])
    register_optimizer_step_post_hook(hook)

def at_replace(spec:dict):
    "Act just before `os.replace` puts file NAME into folder FOLDER."
    folder, name = spec['replace']
    real = os.replace
    def replace(src, dst, *a, **k):
        if os.path.basename(dst) == name and os.path.basename(os.path.dirname(os.path.abspath(dst))) == folder: act(spec['do'])
        return real(src, dst, *a, **k)
    os.replace = replace

def no_locks(spec:dict):
    "`fcntl.lockf` fails as on a file system without POSIX locks."
    import fcntl
    code = getattr(errno, spec['lockf'])
    def lockf(*a, **k): raise OSError(code, os.strerror(code))
    fcntl.lockf = lockf

def mps(spec:dict):
    "Report MPS available; end the process at the first tensor sent to it."
    import torch
    def yes(): return True
    yes.__wrapped__ = yes  # is_available is an lru_cache, whose __wrapped__ torch._dynamo reads
    torch.backends.mps.is_available = torch.backends.mps.is_built = yes
    real = torch.Tensor.to
    def to(self, *a, **k):
        dev = k.get('device', a[0] if a else None)
        if isinstance(dev, (str, torch.device)) and torch.device(dev).type == 'mps':
            print('first tensor to mps', flush=True); os._exit(42)
        return real(self, *a, **k)
    torch.Tensor.to = to

def mine(spec:dict) -> bool:
    "Whether this process is the one the fault names: any, or the group's process of rank R."
    return 'rank' not in spec or os.environ.get('RANK') == str(spec['rank'])

def importing(spec:dict):
    "Act as the module named starts to be imported (the command's start-up)."
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == spec['importing'] and mine(spec): act(spec['do'])
            return None
    sys.meta_path.insert(0, Finder())

def starting(spec:dict):
    "Act now, as the process starts."
    if 'RANK' in os.environ and mine(spec): act(spec['start'])

def memory(spec:dict):
    "The machine reports this much memory available."
    import mnist_course.distributed as d
    d.available_memory = lambda: int(spec['memory'])

def at_exit(spec:dict):
    "As Python shuts down: say so, then wait for the test."
    import atexit
    def wait():
        open(spec['at_exit'] + '.reached', 'w').close()
        while not os.path.exists(spec['at_exit']): time.sleep(0.01)
    atexit.register(wait)

if SPEC:
    if SPEC.get('pids') and ('RANK' in os.environ or 'MNIST_COURSE_PARENT' in os.environ):
        with open(SPEC['pids'], 'a') as f: f.write(f"{os.getpid()}\n")
    for key, install in (('step', at_step), ('replace', at_replace), ('lockf', no_locks), ('mps', mps), ('importing', importing),
                         ('start', starting), ('memory', memory), ('at_exit', at_exit)):
        if key in SPEC: install(SPEC)
