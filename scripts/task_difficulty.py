"""The task suite's difficulty, chosen on the dev split alone: the untuned student's greedy pass@1 on the dev
split built at each setting (steps per task before the end step, doctest examples per docstring), asked
as evalplus asks an instruct model (the baseline stage's request). The test split is never built here.

    python scripts/task_difficulty.py --settings 1:1 2:1 3:1 2:0    # reports/task_difficulty.{md,json}

The rule (reports/positive_control_plan.md): the setting whose dev pass@1 is nearest 40 %, the middle of
the 20-60 % the positive control asks for, so that training has room to help and the untuned student
is not at the floor.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evolab.core.config import load  # noqa: E402
from evolab.core.records import Problem, read_jsonl, read_rows  # noqa: E402
from evolab.core.schema import Experiment  # noqa: E402
from evolab.evaluation.harness import evaluate  # noqa: E402
from evolab.evaluation.sandbox import resolve_sandbox  # noqa: E402
from evolab.evaluation.student import student_backend  # noqa: E402
from evolab.evaluation.suites import Benchmark, build_offline  # noqa: E402
from evolab.evaluation.task_suite import SUITE, build  # noqa: E402

REPORT = ROOT / "reports/task_difficulty"
TARGET = 0.4


def measure(steps: int, examples: int, params: Experiment, work: Path) -> dict:
    dev = build(**{**SUITE, "steps": steps, "examples": examples})["dev"]
    built = build_offline(dev, work / f"dev-{steps}-{examples}.jsonl")
    problems = read_rows(Problem, built)
    benchmark = Benchmark("evolab-tasks-dev", "humaneval", False, problems, "built here")
    eval_cfg = replace(params.eval, sandbox=resolve_sandbox(params.eval.sandbox))
    backend = student_backend(eval_cfg, params.model, None)
    start = time.perf_counter()
    metrics = evaluate(benchmark, problems, backend, params.model.kind, eval_cfg, params.train,
                       work / f"results-{steps}-{examples}", log=lambda line: None)
    per_problem = read_jsonl(work / f"results-{steps}-{examples}" / "per_problem.jsonl")
    by_family: dict[str, list[bool]] = {}
    for task, row in zip(dev, per_problem):
        by_family.setdefault(task["composition"][0], []).append(row["passed"])
    return {"steps": steps, "examples": examples, "problems": len(problems),
            "pass@1": metrics["evolab_tasks_dev"]["pass@1"], "solved": metrics["evolab_tasks_dev"]["solved"],
            "by_family": {f: round(sum(v) / len(v), 3) for f, v in by_family.items()},
            "failures": metrics["failures"], "completion_tokens": metrics["completion_tokens"],
            "minutes": round((time.perf_counter() - start) / 60, 1)}


def render(rows: list[dict], chosen: dict, params: Experiment) -> str:
    settings = " ".join(f"{r['steps']}:{r['examples']}" for r in rows)
    lines = ["# Task suite difficulty on the dev split (untuned student)", "",
             f"`python scripts/task_difficulty.py --settings {settings}`: "
             f"{params.model.name}, greedy, evalplus's chat request, {params.eval.max_tokens} tokens; each "
             "setting's dev split (100 compositions never in the test split) built by `evolab/evaluation/task_suite.py`. "
             "The test split played no part.", "",
             "| steps before the end | examples | dev pass@1 | solved | lists | texts | failures | tokens | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['steps']} | {r['examples']} | {r['pass@1']:.3f} | {r['solved']}/{r['problems']} | "
                     f"{r['by_family'].get('list', 0):.2f} | {r['by_family'].get('text', 0):.2f} | {r['failures']} | "
                     f"{r['completion_tokens']} | {r['minutes']} |")
    lines += ["", f"Chosen by the rule (nearest {TARGET:.0%} in 20-60 %): steps {chosen['steps']}, examples "
              f"{chosen['examples']} (dev pass@1 {chosen['pass@1']:.3f}); `SUITE` in evolab/evaluation/task_suite.py."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["1:1", "2:1", "3:1", "2:0"], help="STEPS:EXAMPLES")
    args = parser.parse_args()
    params = load()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for setting in args.settings:
            steps, examples = map(int, setting.split(":"))
            rows.append(measure(steps, examples, params, Path(work)))
            print(json.dumps(rows[-1]), flush=True)
    inside = [r for r in rows if 0.2 <= r["pass@1"] <= 0.6] or rows
    chosen = min(inside, key=lambda r: abs(r["pass@1"] - TARGET))
    REPORT.with_suffix(".json").write_text(json.dumps({"rows": rows, "chosen": chosen}, indent=2) + "\n")
    REPORT.with_suffix(".md").write_text(render(rows, chosen, params))
    print(render(rows, chosen, params))


if __name__ == "__main__":
    main()
