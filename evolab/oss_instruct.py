"""OSS-Instruct (Magicoder, arXiv 2312.02120): a problem and its solution inspired by a real code snippet.

The prompt and seeds are the paper's (../shared/reference/PAPERS.md §2.2-2.4); this module holds what
is not a prompt: parsing the teacher's answer and Magicoder's cleaning.
"""
from __future__ import annotations

import random
from typing import Any

from evolab.datasets import Record


def parse_problem_solution(text: str) -> tuple[str, str] | None:
    """Magicoder's parsing: the text between the first line naming [Problem Description] and the first
    naming [Solution], and everything after; None when either is missing, misordered or empty."""
    lines = text.splitlines()

    def first(marker: str) -> int | None:
        return next((i for i, line in enumerate(lines) if marker in line.lower()), None)

    problem_at, solution_at = first("[problem description]"), first("[solution]")
    if problem_at is None or solution_at is None or solution_at <= problem_at:
        return None
    problem = "\n".join(lines[problem_at + 1:solution_at]).strip()
    solution = "\n".join(lines[solution_at + 1:]).strip()
    return (problem, solution) if problem and solution else None


def clean(records: list[Record], seed: int) -> tuple[list[Record], list[dict[str, Any]]]:
    """Magicoder's clean_data: shuffle, then drop a sample whose whitespace-stripped seed, problem or
    solution repeats an earlier sample's. Returns the kept samples and (id, field, first id) drops."""
    order = list(records)
    random.Random(seed).shuffle(order)
    first_seen: dict[tuple[str, str], str] = {}
    kept, dropped = [], []
    for record in order:
        keys = [(field, "".join(str(record[field]).split())) for field in ("seed", "problem", "solution")]
        repeat = next((key for key in keys if key in first_seen), None)
        if repeat:
            dropped.append({"id": record["id"], "field": repeat[0], "repeats": first_seen[repeat]})
            continue
        for key in keys:
            first_seen[key] = record["id"]
        kept.append(record)
    return kept, dropped
