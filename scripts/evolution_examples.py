"""Write evolved examples from a real run: per heuristic, kept evolutions with their parents, and
the items that were evolved in several rounds, round by round.

Usage: python scripts/evolution_examples.py OUT.md [--rounds-file data/evolve/r3.jsonl] [--per-heuristic 2]
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import yaml

from evolab.core.records import read_jsonl


def quote(text: str, limit: int = 900) -> str:
    text = text.strip()
    text = text if len(text) <= limit else text[:limit] + " [...]"
    return "> " + text.replace("\n", "\n> ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--rounds-file")
    parser.add_argument("--per-heuristic", type=int, default=2)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    records = read_jsonl(args.rounds_file or params["last_round"])
    evolved = [r for r in records if r["round"] > 0]
    lines = ["# Evolved instructions, straight from a run", "",
             f"Teacher `{params['teacher']['model']}` ({params['teacher']['backend']}), profile `{params['profile']['name']}`, "
             f"{max(r['round'] for r in records)} rounds, {sum(r['round'] == 0 for r in records)} seeds. "
             "Written by `scripts/evolution_examples.py` from the round files.", "",
             "| round | evolved | kept | mean words of kept instructions (parent -> evolved) |", "|---|---|---|---|"]
    for k in sorted({r["round"] for r in evolved}):
        kept = [r for r in evolved if r["round"] == k and r["kept"]]
        words = lambda rs, key: sum(len(r[key].split()) for r in rs) / len(rs) if rs else 0  # noqa: E731
        lines.append(f"| {k} | {sum(r['round'] == k for r in evolved)} | {len(kept)} | "
                     f"{words(kept, 'parent_instruction'):.0f} -> {words(kept, 'instruction'):.0f} |")
    by_heuristic = defaultdict(list)
    for r in evolved:
        if r["kept"]:
            by_heuristic[r["heuristic"]].append(r)
    lines += ["", "## Kept evolutions per heuristic", ""]
    for heuristic in sorted(params["method"]["heuristics"]):
        lines += [f"### {heuristic}", "", f"*{params['method']['heuristics'][heuristic]}*", ""]
        chosen = sorted(by_heuristic[heuristic], key=lambda r: (-r["round"], r["id"]))[: args.per_heuristic]
        if not chosen:
            lines += ["No evolution with this heuristic survived elimination in this run.", ""]
        for r in chosen:
            lines += [f"**{r['id']}, round {r['round']}**", "", "Parent:", "", quote(r["parent_instruction"]), "",
                      "Evolved:", "", quote(r["instruction"]), ""]
    chains = defaultdict(list)
    for r in evolved:
        if r["kept"]:
            chains[r["id"]].append(r)
    multi = {i: sorted(rs, key=lambda r: r["round"]) for i, rs in chains.items() if len(rs) > 1}
    lines += ["## Items kept in more than one round", ""]
    if not multi:
        lines += ["None in this run.", ""]
    for item, rs in sorted(multi.items()):
        lines += [f"### {item}", "", "Seed:", "", quote(rs[0]["parent_instruction"]), ""]
        for r in rs:
            lines += [f"Round {r['round']} (`{r['heuristic']}`):", "", quote(r["instruction"]), ""]
    reasons = defaultdict(int)
    for r in evolved:
        reasons[r["reason"]] += 1
    lines += ["## Why evolutions were eliminated", "", "| reason | items |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
