"""seed: the seed instructions (round 0), normalised to {id, instruction, input, output}."""
from __future__ import annotations

from typing import Any

from evolab import params as P
from evolab.datasets import Record, load_seed_records, write_jsonl


def normalise(records: list[dict[str, Any]], limit: int | None) -> list[Record]:
    chosen = records[:limit] if limit else records
    return [
        {"id": str(r.get("id") or f"seed-{i:05d}"), "round": 0, "instruction": str(r["instruction"]).strip(),
         "input": str(r.get("input") or ""), "output": str(r.get("output") or ""), "kept": True, "reason": "seed"}
        for i, r in enumerate(chosen)
    ]


def main() -> None:
    params = P.load()
    records = normalise(load_seed_records(params["seed_data"]), params["seed_data"]["limit"])
    write_jsonl(records, P.SEED_FILE)
    print(f"seed: {len(records)} records -> {P.SEED_FILE}")


if __name__ == "__main__":
    P.run(main)
