"""How close each round's instructions come to the benchmark's prompts (embedding cosine), and
each item to the benchmark's problems with their solutions (TF-IDF cosine, as Magicoder measured).

Two directions, per round: for each training item its nearest benchmark prompt (does the data
drift towards the test set?), and for each benchmark problem its nearest training item of that
round (the paper's Fig. 4 retrieves top-1 per test problem; it then asks GPT-4, we report cosine).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from evolab.core.records import Item, Nearest
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


def similarity_by_round(items: list[Item], prompts: dict[str, str], model: str,
                        tfidf: np.ndarray | None = None) -> tuple[dict[str, Any], list[Nearest]]:
    """Per-round statistics (and over all items) and, per training item, its nearest benchmark problem
    and cosine; with `tfidf` (per item), the TF-IDF version beside the embedding one."""
    task_ids = list(prompts)
    tests = embed([prompts[t] for t in task_ids], model)
    cosine = embed([item.instruction for item in items], model) @ tests.T  # items x problems
    nearest = cosine.argmax(axis=1)
    rows = [Nearest(item.id, item.round, item.part, task_ids[j], round(float(cosine[i, j]), 4),
                    round(float(tfidf[i]), 4) if tfidf is not None else None) for i, (item, j) in enumerate(zip(items, nearest))]
    stats: dict[str, Any] = {}
    groups = {f"r{k}": np.array([item.round == k for item in items]) for k in sorted({item.round for item in items})}
    for name, mask in {**groups, "all": np.ones(len(items), dtype=bool)}.items():
        stats[name] = {"items": int(mask.sum()), "item_to_test": summary(cosine[mask].max(axis=1)),
                       "test_to_item": summary(cosine[mask].max(axis=0)),
                       **({"item_to_test_tfidf": summary(tfidf[mask])} if tfidf is not None else {})}
    return stats, rows
