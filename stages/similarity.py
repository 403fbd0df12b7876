"""similarity: how close each round's instructions come to the benchmark's prompts (embedding cosine).

Two directions, per round: for each training item its nearest benchmark prompt (does the data
drift towards the test set?), and for each benchmark problem its nearest training item of that
round (the paper's Fig. 4 retrieves top-1 per test problem; it then asks GPT-4, we report cosine).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evolab import params as P
from evolab.benchmarks import load_benchmark
from evolab.datasets import Record, read_jsonl, write_jsonl
from evolab.embeddings import embed


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 4), "median": round(float(np.median(values)), 4),
            "p95": round(float(np.quantile(values, 0.95)), 4), "max": round(float(values.max()), 4)}


def similarity_by_round(records: list[Record], prompts: dict[str, str], model: str) -> tuple[dict[str, Any], list[Record]]:
    """Per-round statistics and, per training item, its nearest benchmark problem and cosine."""
    task_ids = list(prompts)
    tests = embed([prompts[t] for t in task_ids], model)
    items = embed([r["instruction"] for r in records], model)
    cosine = items @ tests.T  # items x problems
    nearest = cosine.argmax(axis=1)
    rows = [{"id": r["id"], "round": r["round"], "nearest_task": task_ids[j], "similarity": round(float(cosine[i, j]), 4)}
            for i, (r, j) in enumerate(zip(records, nearest))]
    stats: dict[str, Any] = {}
    for k in sorted({r["round"] for r in records}):
        mask = np.array([r["round"] == k for r in records])
        stats[f"r{k}"] = {"items": int(mask.sum()), "item_to_test": summary(cosine[mask].max(axis=1)),
                          "test_to_item": summary(cosine[mask].max(axis=0))}
    return stats, rows


def main() -> None:
    params = P.load()
    cfg = params["similarity"]
    benchmark = load_benchmark(cfg["benchmark"])
    prompts = {p["task_id"]: p["prompt"] for p in benchmark.problems}
    stats, rows = similarity_by_round(read_jsonl("data/merged.jsonl"), prompts, cfg["model"])
    write_jsonl(rows, "results/similarity.jsonl")
    P.dump_json({"model": cfg["model"], "benchmark": benchmark.name, **stats}, "metrics/similarity.json")
    print(f"similarity: {stats}")


if __name__ == "__main__":
    P.run(main)
