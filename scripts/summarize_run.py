"""Write a markdown summary of the pipeline run in the current directory (metrics, timings, examples).

Usage: python scripts/summarize_run.py OUT.md [--title TITLE] [--wall SECONDS] [--peak-rss-gb GB]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from evolab.datasets import read_jsonl


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
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    lines = [f"# {args.title}", ""]
    lines.append(f"Profile `{params['profile']['name']}`, rounds {params['rounds']}, seeds {params['seed_data']['limit']}, "
                 f"teacher `{params['teacher']['model']}` ({params['teacher']['backend']}), "
                 f"student `{params['model']['name']}`, method `{params['method']['name']}`.")
    if args.wall:
        lines.append(f"Wall time of `dvc repro`: {args.wall / 60:.1f} min; peak RSS {args.peak_rss_gb} GB.")
    lines += ["", f"## {load('metrics/eval.json')['benchmark']}, pass@1 with 95 % bootstrap CI", "",
              "| model | pass@1 [95 % CI] |", "|---|---|",
              f"| untuned student (chat template) | {fmt_pass(load('metrics/baseline.json'))} |",
              f"| tuned on the merged data (training template, LoRA in llama.cpp) | {fmt_pass(load('metrics/eval.json'))} |",
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
              "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in train.values()) + " |", "", "## Kept evolutions, straight from the run", ""]
    records = read_jsonl(params["last_round"])
    for r in [r for r in records if r["round"] > 0 and r["kept"]]:
        lines += [f"**{r['id']}, round {r['round']}, heuristic `{r['heuristic']}`**", "",
                  "Parent:", "", "> " + r["parent_instruction"].replace("\n", "\n> "), "",
                  "Evolved:", "", "> " + r["instruction"].replace("\n", "\n> "), ""]
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
