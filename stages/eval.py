"""eval / baseline: pass@k of the tuned model (its adapter applied) or of
the untuned student (evalplus's chat request, or its plain completion for a base model) on eval.benchmark.
The tuned model is asked in the format it was trained in (evolab/core/prompts.py)."""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from evolab.core import paths
from evolab.core.config import load
from evolab.core.stage import dump_json, run_stage
from evolab.evaluation.harness import evaluate
from evolab.evaluation.sandbox import resolve_sandbox
from evolab.evaluation.student import student_backend
from evolab.evaluation.suites import load_benchmark, select

TUNED = Path(paths.TUNED)


# mode -> (model evaluated, where its results go, its metrics file)
MODES = paths.EVAL_MODES


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.eval")
    parser.add_argument("mode", choices=MODES, help="dev: the tuned model on the evol-stop development set")
    parser.add_argument("--model", type=Path, default=TUNED, help="the train stage's output folder")
    parser.add_argument("--out", type=Path, help="results folder (default: by mode)")
    parser.add_argument("--metrics", type=Path, help="metrics file (default: by mode)")
    args = parser.parse_args(argv)
    student, out, metrics = MODES[args.mode]
    args.student, args.out, args.metrics = student, args.out or Path(out), args.metrics or Path(metrics)
    return args


def main() -> None:
    args = parse_args(sys.argv[1:])
    params = load()
    eval_cfg, model = params.eval, params.model
    shutil.rmtree(args.out, ignore_errors=True)
    if args.mode == "dev":
        eval_cfg = replace(eval_cfg, benchmark=params.evol_stop.benchmark, limit=params.evol_stop.limit, tasks=None)
    benchmark = load_benchmark(eval_cfg.benchmark)
    problems = select(benchmark.problems, eval_cfg.limit, eval_cfg.tasks)
    tuned = args.student == "tuned"
    style = "tuned" if tuned else model.kind
    sandbox = resolve_sandbox(eval_cfg.sandbox)
    backend = student_backend(eval_cfg, model, params.train.method if tuned else None, args.model)
    metrics = evaluate(benchmark, problems, backend, style, replace(eval_cfg, sandbox=sandbox),
                       params.train, args.out, log=lambda line: print(line, flush=True))
    template = params.train.template if tuned else None
    metrics = {"benchmark": benchmark.name, "backend": eval_cfg.backend, "prompt_style": style, "template": template,
               "max_tokens": eval_cfg.max_tokens,
               "problems": len(problems), "partial": len(problems) < len(benchmark.problems),
               "samples_per_problem": eval_cfg.sampling.n, "temperature": eval_cfg.sampling.temperature,
               "sandbox": sandbox, "live_generations": backend.live_calls, "cached_generations": backend.cached_calls,
               **metrics}
    dump_json(metrics, args.metrics)
    print(f"{args.mode}: {metrics}")


if __name__ == "__main__":
    run_stage(main)
