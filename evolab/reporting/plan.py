"""The plan before a run and the ledger after it: what an experiment will cost, per stage, and what it did cost.

    python -m evolab.reporting.plan [OVERRIDES...]       # e.g. profile=wizardcoder_paper, as `dvc exp run -S` takes them
    python -m evolab.reporting.plan --ledger             # after `dvc repro`: the plan beside what the run measured
    python -m evolab.reporting.plan --refit              # the saved pilots fitted again (no pilot, no teacher call)

The plan runs a pilot: the whole DAG (but the log and the controls) twice, in a scratch copy of the project, at
`--pilot` seeds and `--pilot-problems` evaluation problems (evenly spaced over the benchmark) and at twice that,
through the real teacher with an empty response cache (the pilot's answers are paid for; they are not reused by the
run). By default the smaller pilot is twice as large as the backend's slots (the requests it serves at once), so that
both pilots keep them as full as the experiment does; no pilot is larger than the experiment. Each stage's teacher
calls, prompt and completion tokens are taken in proportion to the two pilots' sizes together, at the experiment's
size: its seeds for the data and training stages, its problems for each evaluation. Its wall seconds lie on the line
through the two pilots (a fixed part: process start, model load), against the completion tokens for a teacher stage
and against the size for the others. Money is the tokens at the given prices per million; training on GPUs is priced
in GPU-hours from the training tokens and the student's size at a stated MFU (6 N FLOPs a token for full
fine-tuning, 4 N for LoRA: PaLM's count, without attention), as the pilot cannot train a GPU student on this
machine. The plan goes to reports/plan.json; `--ledger` reads it back beside each stage's measured figures (its
metrics and the last run of its command in logs/stages.jsonl); a ratio of two figures under 1 (a sub-second stage's
times) is not shown.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evolab.core import paths
from evolab.core.config import compose, resolve
from evolab.core.models import cache_dir
from evolab.core.schema import Experiment
from evolab.core.stage import stage_runs
from evolab.reporting import dag

TEACHER = ("calls", "prompt_tokens", "completion_tokens")
SKIPPED = ("log", "controls@", "control_train@", "control_eval@")  # the controls repeat train and eval per set
# Outputs and stores a scratch copy must not share with the project.
OWN = {"data", "models", "results", "metrics", "calls", "logs", ".dvc", ".git", "params.yaml", "dvc.lock", "mlflow.db",
       "mlruns", "mlartifacts", "reports"}


def scratch(project: Path, work: Path) -> Path:
    """A DVC workspace that links the project's code, configs and data sources, with outputs of its own."""
    work.mkdir(parents=True)
    for entry in project.iterdir():
        if entry.name == "dvc.yaml":  # DVC reads the stages of the dvc.yaml inside its root
            shutil.copy(entry, work / entry.name)
        elif entry.name not in OWN:
            (work / entry.name).symlink_to(entry.resolve())
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=work, check=True)
    return work


def empty_cache(work: Path) -> Path:
    """An evolab cache with the installed models and no response: every pilot call is live."""
    cache = work / "evolab-cache"
    cache.mkdir()
    if (cache_dir() / "models").exists():
        (cache / "models").symlink_to((cache_dir() / "models").resolve())
    return cache


def teacher_figures(repo: Path, stage: dag.Stage) -> dict[str, float]:
    """A stage's teacher calls and tokens, from its metrics (each teacher stage writes its backend's ledger)."""
    for name in stage.metrics:
        if (repo / name).exists() and "calls" in (stats := json.loads((repo / name).read_text())):
            return {key: float(stats[key]) for key in TEACHER}
    return {}


def spread(params: Experiment, problems: int) -> list[str]:
    """`problems` of the evaluation benchmark's task ids, evenly spaced over it: a pilot's problems stand for the whole
    benchmark, not for its first few (which need not be typical of it)."""
    from evolab.evaluation.suites import load_benchmark

    ids = [p.task_id for p in load_benchmark(params.eval.benchmark).problems]
    return [ids[round(i * len(ids) / problems)] for i in range(min(problems, len(ids)))]


def pilot(project: Path, overrides: list[str], seeds: int, tasks: list[str], work: Path) -> dict[str, dict[str, float]]:
    """Every stage but the log and the controls at `seeds` seeds and the evaluation problems `tasks` (the dev set:
    as many of its first problems): per stage, its wall seconds and teacher figures."""
    repo = scratch(project, work)
    compose([*overrides, f"profile.seeds={seeds}", f"eval.tasks=[{','.join(tasks)}]", f"evol_stop.limit={len(tasks)}"],
            conf_dir=project / "conf", output=repo / "params.yaml")
    env = {**os.environ, "EVOLAB_CACHE": str(empty_cache(work)), "PYTHONPATH": str(repo)}
    figures = {}
    for stage in dag.stages(repo):
        if stage.name.startswith(SKIPPED):
            continue
        started = time.perf_counter()
        done = subprocess.run(stage.cmd, shell=True, cwd=repo, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the pilot's {stage.name} failed ({seeds} seeds):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        figures[stage.name] = {"seconds": time.perf_counter() - started, **teacher_figures(repo, stage)}
        if stage.name == "decontaminate":  # what training will read: ~4 characters a token (the student's own count
            figures["train_tokens"] = {"tokens": len((repo / paths.TRAIN).read_text()) / 4}  # is only known on CPU)
        print(f"pilot {seeds} seeds: {stage.name} {figures[stage.name]}", flush=True)
    return figures


def slots(cfg: Any) -> int:
    """How many requests a backend's section serves at once: llama.cpp's decoding slots (`parallel`), an endpoint's
    `concurrency`; 1 where it has neither (one at a time, or vLLM, which batches whatever it gets)."""
    return int(getattr(cfg, "parallel", None) or getattr(cfg, "concurrency", None) or 1)


def pilot_sizes(requested: int | None, floor: int, n_slots: int, full: int) -> tuple[int, int]:
    """The two pilots' sizes (seeds or problems) for an experiment of `full`. The smaller is `requested` or, by default,
    `floor` or twice the backend's `n_slots`, whichever is larger: a batching backend decodes slower per token with its
    slots full than a pilot below them shows (reports/plan_default.md: 59 tokens/s in one batch of 16 problems, 44
    with 164 problems through the same 16 slots), so the pilots must fill them as the experiment does. The larger
    pilot is twice the smaller. Neither is beyond the experiment: a pilot at its size is its own figure."""
    small = max(1, min(requested or max(floor, 2 * n_slots), full // 2))
    return small, min(2 * small, full)


def extrapolate(x1: float, y1: float, x2: float, y2: float, x: float) -> float:
    """y at x on the line through the two pilots (no less than the larger pilot's y when x is beyond it); the two
    pilots' mean when they ran at one size (an evaluation set smaller than both)."""
    if x1 == x2:
        return (y1 + y2) / 2
    slope = (y2 - y1) / (x2 - x1)
    return max(y1 + slope * (x - x1), y2 if x >= x2 else 0.0)


def seconds(small: dict[str, float], large: dict[str, float], sizes: tuple[float, float, float],
            planned: dict[str, float]) -> float:
    """A stage's wall seconds at the experiment's size, on the line through the two pilots: against the completion
    tokens the teacher decodes (planned as above) where the larger pilot decoded more, so that the pilots' answer
    lengths do not tilt the line; otherwise against the stage's size (seeds or problems)."""
    x1, x2, x = sizes
    if small.get("completion_tokens", 0) < large.get("completion_tokens", 0):
        x1, x2, x = small["completion_tokens"], large["completion_tokens"], planned["completion_tokens"]
    return extrapolate(x1, small["seconds"], x2, large["seconds"], x)


def full_problems(params: Experiment, evaluation: str) -> int:
    """The problems an evaluation stage scores at the experiment's size (`eval` and `baseline`: eval's benchmark,
    `dev`: the evol-stop set)."""
    from evolab.evaluation.suites import load_benchmark, select

    cfg = params.evol_stop if evaluation == "dev" else params.eval
    return len(select(load_benchmark(cfg.benchmark).problems, cfg.limit, getattr(cfg, "tasks", None)))


def gpu_hours(params: Experiment, train_tokens: float, mfu: float, peak_tflops: float) -> float | None:
    """Training GPU-hours at `mfu` of `peak_tflops` a GPU, or None for a student without a parameter count."""
    size = params.model.parameters
    if not size:
        return None
    per_token = (4 if params.train.method == "lora" else 6) * float(size)
    return per_token * train_tokens * params.train.epochs / (mfu * peak_tflops * 1e12) / 3600


def make_plan(project: Path, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The pilots (or, with --refit, the ones OUT.json saved), fitted and read at the experiment's size; prices and
    GPU-hours added. The pilots' figures are saved to OUT.json as soon as they are measured, so that a fit that
    fails, or a better estimator, costs no second pilot."""
    saved = args.out.with_suffix(".json")
    if args.refit:
        plan = json.loads(saved.read_text())
        overrides, sizes, pilots = plan["overrides"], [tuple(s) for s in plan["pilot_sizes"]], plan["pilots"]
    params = resolve(compose(overrides, conf_dir=project / "conf", output=Path(tempfile.mkdtemp()) / "params.yaml"))
    if not args.refit:
        seeds = pilot_sizes(args.pilot, 3, slots(params.teacher), params.profile.seeds)
        problems = pilot_sizes(args.pilot_problems, 8, slots(params.eval), full_problems(params, "eval"))
        sizes = list(zip(seeds, problems))
        print(f"pilots: {seeds[0]} and {seeds[1]} seeds, {problems[0]} and {problems[1]} problems", flush=True)
        with tempfile.TemporaryDirectory(prefix="evolab-pilot-") as tmp:
            pilots = [pilot(project, overrides, s, spread(params, p), Path(tmp) / f"pilot{s}") for s, p in sizes]
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"overrides": overrides, "pilot_sizes": sizes, "pilots": pilots}, indent=2) + "\n")
    return fit(params, overrides, sizes, pilots, args)


def batch_notes(params: Experiment, sizes: list[tuple[int, int]], full: tuple[int, int]) -> list[str]:
    """Where the experiment keeps a llama.cpp backend's decoding slots full (at least twice as many requests as
    slots) and the larger pilot does not: a full batch decodes slower per token than a pilot's half-empty ones
    (reports/plan_default.md: 59 tokens/s at 16 problems, 44 at 164), so those stages' times are likely planned low."""
    notes = []
    for section, pilot, count, unit in (("teacher", sizes[1][0], full[0], "seeds"), ("eval", sizes[1][1], full[1], "problems")):
        cfg = getattr(params, section)
        n = slots(cfg) if cfg.backend == "llama_cpp" else 1
        if n > 1 and pilot < 2 * n <= count:
            notes.append(f"The larger pilot's {pilot} {unit} fill {section}.parallel's {n} decoding slots for only part "
                         f"of its run, the experiment's {count} for most of it: the {section} stages' times are likely "
                         "planned low (reports/plan_default.md).")
    return notes


def fit(params: Experiment, overrides: list[str], sizes: list[tuple[int, int]], pilots: list[dict[str, Any]],
        args: argparse.Namespace) -> dict[str, Any]:
    """Each stage's figures at the experiment's size from the two pilots (`sizes`: their seeds and problems)."""
    full_seeds = params.profile.seeds
    problems = {evaluation: full_problems(params, evaluation) for evaluation in ("eval", "baseline", "dev")}
    stages = {}
    for name, small in pilots[0].items():
        large = pilots[1][name]
        if name in problems:  # an evaluation set smaller than a pilot's problems (the dev set) is scored whole
            x1, x2, x = (*[min(p, problems[name]) for _, p in sizes], problems[name])
        else:
            x1, x2, x = (*[s for s, _ in sizes], full_seeds)
        # Calls and tokens have no fixed part: in proportion to the two pilots' sizes together (the one-item noise of
        # small pilots is not extrapolated along a slope); seconds have one (process start, model load).
        stages[name] = {key: round((small[key] + large[key]) / (x1 + x2) * x, 1) for key in small if key != "seconds"}
        if "seconds" in small:  # not the training tokens' entry
            stages[name]["seconds"] = round(seconds(small, large, (x1, x2, x), stages[name]), 1)
    teacher = {key: sum(s.get(key, 0) for s in stages.values()) for key in TEACHER}
    money = (teacher["prompt_tokens"] * args.price_prompt + teacher["completion_tokens"] * args.price_completion) / 1e6
    train_tokens = stages.pop("train_tokens", {}).get("tokens")
    return {"overrides": overrides, "seeds": full_seeds, "pilot_seeds": [s for s, _ in sizes], "pilot_sizes": sizes,
            "pilots": pilots, "stages": stages, "teacher": teacher, "money": round(money, 2),
            "prices_per_million": [args.price_prompt, args.price_completion],
            "gpu_hours": gpu_hours(params, train_tokens, args.mfu, args.peak_tflops) if train_tokens else None,
            "mfu": args.mfu, "seconds": round(sum(s["seconds"] for s in stages.values())),
            "notes": batch_notes(params, sizes, (full_seeds, problems["eval"]))}


def measured(project: Path) -> dict[str, dict[str, float]]:
    """What the last run of each stage measured: its wall seconds (logs/stages.jsonl) and teacher figures."""
    times = {run["cmd"]: run["seconds"] for run in stage_runs(project)}  # the last run of each command
    return {stage.name: {"seconds": times[stage.cmd], **teacher_figures(project, stage)}
            for stage in dag.stages(project) if stage.cmd in times}


def render(plan: dict[str, Any], ledger: dict[str, dict[str, float]] | None = None) -> str:
    keys = ["seconds", *TEACHER]
    head = " | ".join(f"{k} planned" + (f" | {k} measured | ratio" if ledger is not None else "") for k in keys)
    lines = [f"Plan for `{' '.join(plan['overrides']) or 'the default'}` ({plan['seeds']} seeds), from pilots of "
             f"{' and '.join(map(str, plan['pilot_seeds']))} seeds, {' and '.join(str(p) for _, p in plan['pilot_sizes'])} "
             "problems:", "", f"| stage | {head} |",
             "|---|" + "---|" * (len(keys) * (3 if ledger is not None else 1))]
    for name, planned in plan["stages"].items():
        cells = []
        for key in keys:
            cells.append(f"{planned.get(key, 0):,.0f}")
            if ledger is not None:
                got = ledger.get(name, {}).get(key)
                shown = got and max(got, planned.get(key, 0)) >= 1  # not two sub-second times: process-start noise
                cells += [f"{got:,.0f}" if got is not None else "", f"{planned.get(key, 0) / got:.2f}" if shown else ""]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", f"Teacher: {plan['teacher']['calls']:,.0f} calls, {plan['teacher']['prompt_tokens']:,.0f} prompt and "
              f"{plan['teacher']['completion_tokens']:,.0f} completion tokens: ${plan['money']:,.2f} at "
              f"${plan['prices_per_million'][0]} / ${plan['prices_per_million'][1]} per million. All stages: "
              f"{plan['seconds'] / 3600:.2f} h on this machine."]
    if plan["gpu_hours"] is not None:
        lines.append(f"Training on GPUs: {plan['gpu_hours']:,.1f} GPU-hours at {plan['mfu']:.0%} MFU.")
    lines += plan.get("notes", [])
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m evolab.reporting.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="as `dvc exp run -S` takes them, e.g. profile=wizardcoder_paper")
    parser.add_argument("--pilot", type=int, help="seeds of the smaller pilot (the other: twice as many); default: "
                        "3 or twice the teacher's slots, whichever is larger")
    parser.add_argument("--pilot-problems", type=int, help="evaluation problems of the smaller pilot; default: 8 or "
                        "twice the student's slots, whichever is larger")
    parser.add_argument("--price-prompt", type=float, default=0.0, help="dollars per million prompt tokens")
    parser.add_argument("--price-completion", type=float, default=0.0, help="dollars per million completion tokens")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed for GPU training")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="a GPU's dense bf16 peak (H100/H200: 989)")
    parser.add_argument("--ledger", action="store_true", help="compare the saved plan with the last run's figures")
    parser.add_argument("--refit", action="store_true", help="fit again from the pilots OUT.json saved (no teacher call)")
    parser.add_argument("--out", type=Path, default=Path("reports/plan"), help="writes OUT.json (and OUT.md)")
    args = parser.parse_args(argv)
    project = Path.cwd()
    if args.ledger:
        plan = json.loads(args.out.with_suffix(".json").read_text())
        text = render(plan, measured(project))
    else:
        plan = make_plan(project, args.overrides, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(plan, indent=2) + "\n")
        text = render(plan)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
