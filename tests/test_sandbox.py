"""Hostile samples through the same checker the pipeline uses: each one fails, the evaluation
finishes, an honest sample still passes, and the machine is left as it was."""
import os
import socket
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import compose_params

from evolab.evaluation.harness import score
from evolab.evaluation.sandbox import namespaces_available
from evolab.evaluation.suites import load_benchmark

MARKER = "evolab-hostile-marker"
# A child that names itself (its comm, what ps shows; a multiprocessing name never leaves Python), then holds on.
HOLD = f"import ctypes, time\nctypes.CDLL(None).prctl(15, b'{MARKER[:15]}', 0, 0, 0)\ntime.sleep(60)"


def hostile_bodies(canary: Path, port: int) -> dict[str, str]:
    """Each body does its damage, then returns the right answer: failing proves it was stopped."""
    answer = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    bodies = {
        "infinite_loop": "while True:\n    pass\n",
        "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
        "spawn_bomb": f"import os, sys\nwhile True:\n    os.posix_spawn(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)  # {MARKER}'], dict(os.environ))\n",
        "process_bomb": f"import multiprocessing\nfor _ in range(50):\n    multiprocessing.Process(target=exec, args=({HOLD!r},)).start()\n",
        "memory_bomb": "hog = []\nwhile True:\n    hog.append(bytearray(64 * 2**20))\n",
        "rmtree": f"import shutil\nshutil.rmtree({str(canary.parent)!r})\n",
        "remove": f"import os\nos.remove({str(canary)!r})\n",
        "truncate": f"import io\nio.open({str(canary)!r}, 'w').close()\n",
        "pathlib_unlink": f"import pathlib\npathlib.Path({str(canary)!r}).unlink()\n",
        "temp_leak": f"import io, tempfile\nio.open(tempfile.gettempdir() + '/{MARKER}', 'w').write('x')\nraise SystemExit\n",
        "socket": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n",
        "raw_socket": f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\ns.send(b'x')\n",
    }
    return {name: textwrap.indent(body, "    ") + answer for name, body in bodies.items()}


# evalplus's guard alone stops these; the rest need the namespaces (io.open, _socket, ...).
GUARD_STOPS = {"infinite_loop", "fork_bomb", "spawn_bomb", "process_bomb", "memory_bomb", "rmtree", "remove",
               "pathlib_unlink", "socket"}


class Listener:
    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.server.accept()[0].close()
            except OSError:
                return
            self.connections += 1


def processes_with_marker() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if MARKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() or Path(f"/proc/{pid}/comm").read_text().strip() == MARKER[:15]:
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_the_marker_check_sees_a_process_bomb_child_outside_the_sandbox():
    """The check below can fail: run outside any sandbox, a process bomb's child is seen by its name."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=exec, args=(HOLD,))
    child.start()
    try:
        for _ in range(50):
            if child.pid in processes_with_marker():
                break
            threading.Event().wait(0.1)
        assert child.pid in processes_with_marker()
    finally:
        child.kill()
        child.join()


@pytest.mark.slow  # a memory bomb, fork bombs and sleeping children, cleaned up each time
@pytest.mark.parametrize("sandbox", ["namespaces", "guard"])
def test_hostile_samples_fail_cleanly_and_leave_the_machine_as_it_was(sandbox, tmp_path):
    if sandbox == "namespaces" and not namespaces_available():
        configured = compose_params([], tmp_path / "params.yaml")["eval"]["sandbox"]
        assert configured != "namespaces", "eval.sandbox requires namespaces, which this machine lacks: the eval would refuse to run"
        pytest.skip("Linux user namespaces are not available on this machine (eval.sandbox: auto falls back to the guard)")
    benchmark = load_benchmark("humaneval")
    problem = benchmark.problems[0]
    canary = tmp_path / "precious" / "canary.txt"
    canary.parent.mkdir()
    canary.write_text("keep me")
    listener = Listener()
    bodies = hostile_bodies(canary, listener.port)
    names = list(bodies) if sandbox == "namespaces" else [n for n in bodies if n in GUARD_STOPS]
    samples = [(problem.task_id, problem.prompt + bodies[n]) for n in names]
    samples.append((problem.task_id, problem.prompt + problem.canonical_solution))

    rows = score(benchmark, [problem], samples, tmp_path / "check", sandbox, memory_mb=1024)

    verdicts = dict(zip(names + ["honest"], rows))
    assert [n for n in names if verdicts[n].passed] == []
    assert verdicts["honest"].passed
    assert canary.read_text() == "keep me"
    assert listener.connections == 0
    assert processes_with_marker() == []
    assert not (Path(tempfile.gettempdir()) / MARKER).exists() and not (Path("/dev/shm") / MARKER).exists()
