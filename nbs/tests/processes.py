"""Processes found by what they inherited: every process a test starts carries the variables of its environment, so
a variable set for one test (or for the whole session) finds all of them in /proc, launchers, workers and children
alike, even after they were orphaned."""
import os, time, uuid
from pathlib import Path

def live_with(name: str, value: str) -> list[int]:
    "The running processes (zombies aside) other than this one whose environment holds name=value."
    want, found = f'{name}={value}'.encode(), []
    for d in Path('/proc').iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid(): continue
        try:
            if want in (d/'environ').read_bytes().split(b'\0') and (d/'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z':
                found.append(int(d.name))
        except OSError: pass  # it ended meanwhile
    return found

def gone(name: str, value: str, within: float = 30) -> list[int]:
    "Wait up to `within` seconds for every process with name=value to end; return those still running."
    t = time.monotonic()
    while (left := live_with(name, value)) and time.monotonic() - t < within: time.sleep(0.05)
    return left

def tagged() -> dict:
    "A variable of its own for one test's processes: give it to the command's environment; every child inherits it."
    return {'MNIST_COURSE_TEST_RUN': uuid.uuid4().hex}
