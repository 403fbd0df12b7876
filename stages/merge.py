"""merge: the seed data plus the kept items of rounds 1..N, as the paper trains on."""
from __future__ import annotations

from typing import Any

from evolab import params as P
from evolab.datasets import Record, read_jsonl, write_jsonl


def merge(records: list[Record]) -> tuple[list[Record], dict[str, Any]]:
    kept = [r for r in records if r["kept"] and r["output"].strip()]
    per_round: dict[str, int] = {}
    for r in kept:
        per_round[f"r{r['round']}"] = per_round.get(f"r{r['round']}", 0) + 1
    merged = [{"id": f"{r['id']}@r{r['round']}", "round": r["round"], "instruction": r["instruction"],
               "input": r.get("input", ""), "output": r["output"]} for r in kept]
    return merged, {"merged_items": len(merged), "items_per_round": per_round}


def main() -> None:
    params = P.load()
    merged, stats = merge(read_jsonl(params["last_round"]))
    write_jsonl(merged, "data/merged.jsonl")
    P.dump_json(stats, "metrics/data.json")
    print(f"merge: {stats}")


if __name__ == "__main__":
    P.run(main)
