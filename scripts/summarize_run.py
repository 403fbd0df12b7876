"""Write a markdown summary of the pipeline run in the current directory (metrics, timings, examples).

Usage: python scripts/summarize_run.py OUT.md [--title TITLE] [--wall SECONDS] [--peak-rss-gb GB] [--finetune reports/finetune.json]

--finetune adds (or replaces) this run's entry, under its profile's name, in a JSON of tuned-vs-untuned results.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from evolab.core.records import read_jsonl
from evolab.evaluation.diff import diff_runs, read_run
from evolab.evaluation.suites import metric_suite

# How eval asks the untuned student (stages/eval.py): evalplus's request for its kind of model.
UNTUNED_PROMPT = {"instruct": "evalplus's chat request", "base": "evalplus's plain completion"}


def load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def fmt_pass(m: dict) -> str:
    """pass@1 [CI] of each suite the run has (humaneval, humaneval_plus, ...)."""
    partial = " (partial)" if m.get("partial") else ""
    suites = [k for k, v in m.items() if isinstance(v, dict) and "pass@1" in v]
    return "; ".join(f"{k} {m[k]['pass@1']:.3f} [{m[k]['pass@1_ci95_low']:.3f}, {m[k]['pass@1_ci95_high']:.3f}] "
                     f"({m[k]['solved']}/{m['problems']} solved){partial}" for k in suites)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--title", default="Pipeline run")
    parser.add_argument("--wall", type=float)
    parser.add_argument("--peak-rss-gb", type=float)
    parser.add_argument("--finetune", type=Path, help="JSON to add this run's tuned-vs-untuned entry to")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    tuned, untuned = load("metrics/eval.json"), load("metrics/baseline.json")
    suite = metric_suite(tuned["benchmark"])
    paired = diff_runs(read_run("results/baseline"), read_run("results/tuned"), key="base_correct")
    lines = [f"# {args.title}", ""]
    lines.append(f"Profile `{params['profile']['name']}`, rounds {params['rounds']}, seeds {params['seed_data']['limit']}, "
                 f"teacher `{params['teacher']['model']}` ({params['teacher']['backend']}), "
                 f"student `{params['model']['name']}`, method `{params['method']['name']}`.")
    if args.wall:
        lines.append(f"Wall time of `dvc repro`: {args.wall / 60:.1f} min; peak RSS {args.peak_rss_gb} GB.")
    lines += ["", f"## {load('metrics/eval.json')['benchmark']}, pass@1 with 95 % bootstrap CI", "",
              "| model | pass@1 [95 % CI] |", "|---|---|",
              f"| untuned student ({UNTUNED_PROMPT[params['model']['kind']]}) | {fmt_pass(untuned)} |",
              f"| tuned on the merged data (training template, LoRA in llama.cpp) | {fmt_pass(tuned)} |",
              "", f"Tuned against untuned on the same {paired.tasks} problems: won {len(paired.won)}, "
              f"lost {len(paired.lost)}, exact McNemar p = {paired.mcnemar_p:.3g}.",
              "", "## Evolution rounds", "",
              "| round | items | kept | eliminated by reason | heuristics | mean instruction / answer tokens (kept) |",
              "|---|---|---|---|---|---|"]
    for name, spec in params["evolve_rounds"].items():
        s = load(spec["stats"])
        lines.append(f"| {name} | {s['items']} | {s['kept']} | {s['reasons']} | {s['heuristics']} | "
                     f"{s['mean_instruction_tokens']} / {s['mean_answer_tokens']} |")
    data, train = load("metrics/data.json"), load("metrics/train.json")
    lines += ["", f"Merged training set: {data['merged_items']} items {data['items_per_round']}.", "",
              "## Training", "", "| " + " | ".join(train) + " |", "|" + "---|" * len(train),
              "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in train.values()) + " |", "",
              "## Kept evolutions, straight from the run", ""]
    records = read_jsonl(params["last_round"])
    for r in [r for r in records if r["round"] > 0 and r["kept"]]:
        lines += [f"**{r['id']}, round {r['round']}, heuristic `{r['heuristic']}`**", "",
                  "Parent:", "", "> " + r["parent_instruction"].replace("\n", "\n> "), "",
                  "Evolved:", "", "> " + r["instruction"].replace("\n", "\n> "), ""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    if args.finetune:
        entries = json.loads(args.finetune.read_text()) if args.finetune.exists() else {}
        entries[params["profile"]["name"]] = {
            "untuned_pass1": untuned[suite]["pass@1"], "tuned_pass1": tuned[suite]["pass@1"],
            "won": len(paired.won), "lost": len(paired.lost), "mcnemar_p": paired.mcnemar_p,
            "problems": paired.tasks, "train_items": data["merged_items"],
            "wall_minutes": round(args.wall / 60, 1) if args.wall else None, "summary": args.out}
        args.finetune.write_text(json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    main()
