"""How close each round's instructions come to the benchmark's prompts (embedding cosine), and
each item to the benchmark's problems with their solutions (TF-IDF cosine, as Magicoder measured).

Two directions, per round: for each training item its nearest benchmark prompt (does the data
drift towards the test set?), and for each benchmark problem its nearest training item of that
round (the paper's Fig. 4 retrieves top-1 per test problem; it then asks GPT-4, we report cosine).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evolab.core.records import Record
from evolab.curation.embeddings import embed


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 4), "median": round(float(np.median(values)), 4),
            "p95": round(float(np.quantile(values, 0.95)), 4), "max": round(float(values.max()), 4)}


def tfidf_to_test(items: list[str], tests: list[str]) -> np.ndarray:
    """Magicoder's analysis (experiments/data_embedding/cosine_similarity.py): TF-IDF fit on every text,
    and per item its highest cosine to a benchmark problem."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer().fit_transform(items + tests)  # rows are unit-length: dot = cosine
    return (matrix[:len(items)] @ matrix[len(items):].T).max(axis=1).toarray().ravel()


def similarity_by_round(records: list[Record], prompts: dict[str, str], model: str,
                        tfidf: np.ndarray | None = None) -> tuple[dict[str, Any], list[Record]]:
    """Per-round statistics (and over all items) and, per training item, its nearest benchmark problem
    and cosine; with `tfidf` (per item), the TF-IDF version beside the embedding one."""
    task_ids = list(prompts)
    tests = embed([prompts[t] for t in task_ids], model)
    items = embed([r["instruction"] for r in records], model)
    cosine = items @ tests.T  # items x problems
    nearest = cosine.argmax(axis=1)
    rows = [{"id": r["id"], "round": r["round"], "part": r.get("part", "code_evol"), "nearest_task": task_ids[j],
             "similarity": round(float(cosine[i, j]), 4)} for i, (r, j) in enumerate(zip(records, nearest))]
    if tfidf is not None:
        for row, value in zip(rows, tfidf):
            row["tfidf"] = round(float(value), 4)
    stats: dict[str, Any] = {}
    groups = {f"r{k}": np.array([r["round"] == k for r in records]) for k in sorted({r["round"] for r in records})}
    for name, mask in {**groups, "all": np.ones(len(records), dtype=bool)}.items():
        stats[name] = {"items": int(mask.sum()), "item_to_test": summary(cosine[mask].max(axis=1)),
                       "test_to_item": summary(cosine[mask].max(axis=0))}
        if tfidf is not None:
            stats[name]["item_to_test_tfidf"] = summary(tfidf[mask])
    return stats, rows
