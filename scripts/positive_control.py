"""Write reports/positive_control.{md,json} from a finished `dvc exp run -S profile=positive_control` in the current
directory: tuned against untuned on the held-out test split, the unverified control, each paired with its exact
McNemar p and its minimum detectable effect; the verification counts; samples of what changed.

    python scripts/positive_control.py --wall SECONDS --setup SECONDS [--humaneval-run OTHER_CLONE] [--speed TEXT]

--humaneval-run: a folder holding the same experiment evaluated on HumanEval (`-S eval.benchmark=humaneval`), whose
results/baseline and results/tuned are reported beside, with no claim.
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from evolab.core.records import read_jsonl
from evolab.evaluation.diff import diff_runs, read_run, resolution

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/positive_control"


def load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def compare(a: str, b: str, problems_key: str = "base_correct") -> dict[str, Any]:
    """b against a, paired: both pass@1, won / lost, exact McNemar p, the minimum detectable net difference."""
    d = diff_runs(read_run(a), read_run(b), key=problems_key)
    r = resolution(len(d.won), len(d.lost))
    return {"a_pass1": round(d.pass_at_1_a, 4), "b_pass1": round(d.pass_at_1_b, 4), "won": r.won, "lost": r.lost,
            "mcnemar_p": r.mcnemar_p, "mde": r.mde, "reads": r.reads, "problems": d.tasks,
            "won_tasks": d.won, "lost_tasks": d.lost}


def row(comparison: dict[str, Any], train_items: int | None, verified_share: float | None, against: str) -> dict[str, Any]:
    return {"against": against, "untuned_pass1": comparison["a_pass1"], "tuned_pass1": comparison["b_pass1"],
            "won": comparison["won"], "lost": comparison["lost"], "mcnemar_p": comparison["mcnemar_p"],
            "mde": comparison["mde"], "reads": comparison["reads"], "problems": comparison["problems"],
            "train_items": train_items, "verified_share": verified_share}


def samples(won: list[str], limit: int = 2) -> list[str]:
    """The untuned and the tuned answer of a few problems the tuned model won, side by side."""
    untuned = {r["task_id"]: r for r in read_jsonl("results/baseline/samples.jsonl")}
    tuned = {r["task_id"]: r for r in read_jsonl("results/tuned/samples.jsonl")}
    lines = []
    for task in won[:limit]:
        body = lambda text: text.split('"""', 2)[-1].strip("\n`") if '"""' in text else text  # noqa: E731 - after the docstring
        lines += [f"**{task}**, untuned (fails):", "", "```python", body(untuned[task]["solution"]).rstrip(), "```", "",
                  "tuned (passes):", "", "```python", body(tuned[task]["solution"]).rstrip(), "```", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wall", type=float, required=True, help="seconds of `dvc exp run`")
    parser.add_argument("--setup", type=float, help="seconds of scripts/setup.sh before it")
    parser.add_argument("--humaneval-run", type=Path)
    parser.add_argument("--speed", default="", help="the machine's speed that day, as measured beside the run")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    verify, train = load("metrics/verify.json"), load("metrics/train.json")
    control = "unverified-samples"
    control_train = load(f"metrics/controls/{control}/train.json")
    main_cmp = compare("results/baseline", "results/tuned")
    control_cmp = compare("results/baseline", f"results/controls/{control}")
    verified_cmp = compare(f"results/controls/{control}", "results/tuned")
    training = read_jsonl("data/train.jsonl")
    first_passed = sum(bool(r["attempts"]) and r["attempts"][0] == "pass" for r in training)
    result = {**row(main_cmp, train["examples"], verify["pass_share"], "untuned"),
              "wall_minutes": round(args.wall / 60, 1), "setup_minutes": round(args.setup / 60, 1) if args.setup else None,
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
              "verified": {k: verify[k] for k in ("items", "passed", "pass_share", "first_attempt_passed", "teacher_calls",
                                                  "calls_per_kept", "verdicts")},
              "dev": {"tuned_pass1": load("metrics/dev.json")["evolab_tasks_dev"]["pass@1"]},
              "ablation": [row(control_cmp, control_train["examples"], round(first_passed / len(training), 4), "untuned")
                           | {"name": control},
                           row(verified_cmp, train["examples"], verify["pass_share"], control) | {"name": "verified against unverified"}]}
    if args.humaneval_run:
        he = compare(str(args.humaneval_run / "results/baseline"), str(args.humaneval_run / "results/tuned"))
        result["humaneval"] = row(he, train["examples"], verify["pass_share"], "untuned")
    REPORT.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")

    def line(name: str, r: dict[str, Any]) -> str:
        return (f"| {name} | {r['untuned_pass1']:.3f} | {r['tuned_pass1']:.3f} | {r['won']} / {r['lost']} | {r['mcnemar_p']:.2g} | "
                f"{r['mde'] if r['mde'] is not None else '–'} | {r['reads']} | {r['train_items']} |")

    lines = ["# Positive control: verified data, and a data effect measured on a laptop", "",
             f"`bash scripts/setup.sh && . .venv/bin/activate && dvc exp run -S profile=positive_control` in a clean clone of "
             f"{result['commit']} with an empty response cache: {result['wall_minutes']} min of `dvc exp run`"
             + (f" after {result['setup_minutes']} min of setup" if args.setup else "") + f" on 2 cores. {args.speed}",
             f"Plan, committed before this run: `reports/positive_control_plan.md`. Student and teacher "
             f"`{params['model']['name']}`; {main_cmp['problems']} held-out test tasks (`evolab-tasks`), none of whose "
             "compositions is in the training pool or the dev split.", "",
             "| comparison (b against a, paired) | a pass@1 | b pass@1 | won / lost | exact McNemar p | MDE (net problems, 80 % power) | "
             "reads | training items |", "|---|---|---|---|---|---|---|---|",
             line("tuned on verified answers against untuned", result),
             line("tuned on unverified answers (same tasks, first answers) against untuned", result["ablation"][0]),
             line("verified against unverified", result["ablation"][1])]
    if "humaneval" in result:
        lines.append(line("HumanEval (no claim): tuned against untuned", result["humaneval"]))
    v = result["verified"]
    lines += ["", f"Verification kept {v['passed']} of {v['items']} answered pool tasks ({v['pass_share']:.0%}; "
              f"{v['first_attempt_passed']} at the first answer), {v['teacher_calls']} teacher calls, "
              f"{v['calls_per_kept']} per kept task; verdicts {v['verdicts']}. The unverified control trains on the same "
              f"{control_train['examples']} tasks with the first answer each ({first_passed} of them passing). Tuned dev pass@1 "
              f"{result['dev']['tuned_pass1']:.3f}.", "", "## What changed, read from the answers", ""]
    lines += samples(main_cmp["won_tasks"])
    REPORT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
