"""Decontamination against the benchmarks, and near-duplicate removal, for any method's data.

Three checks of each item's text (instruction and output) against each benchmark problem:
- substring: the problem's docstring or canonical solution appears in the item (case-insensitive,
  whitespace collapsed), as StarCoder's and Magicoder's decontamination do; trivial solutions
  (Magicoder excludes a handful such as `return x + y`) are skipped below `min_chars`;
- ngram: the share of the problem's prompt's, or of its solution's, word n-grams that occur in the item (GPT-3 style
  overlap, the prompt and the solution each on their own);
- embedding: cosine of the item's instruction to the problem's prompt (sentence embeddings).
Then exact and near duplicates (MinHash LSH over word shingles, datasketch) are removed.
Every removal is returned with its reason, so that the report can show what went and why.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from evolab.core.records import Item, Problem, Record
from evolab.core.schema import Decontamination, Dedup

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Removal:
    id: str
    check: str  # substring | ngram | embedding | duplicate
    match: str  # the benchmark task (or the kept item a duplicate repeats)
    score: float

    def as_record(self) -> Record:
        return {"id": self.id, "check": self.check, "match": self.match, "score": round(self.score, 4)}


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def docstring(prompt: str) -> str:
    """The docstring of the prompt's last function (HumanEval), else the prompt's text (MBPP's prompt is a docstring)."""
    try:
        functions = [n for n in ast.walk(ast.parse(prompt)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    except SyntaxError:
        functions = []
    found = ast.get_docstring(functions[-1]) if functions else None
    return found or prompt.strip().strip('"').strip()


def benchmark_strings(problems: list[Problem], min_chars: int) -> list[tuple[str, str]]:
    """(task_id, normalized string) for each problem's docstring and canonical solution long enough to mean something."""
    strings = []
    for problem in problems:
        for text in (docstring(problem.prompt), problem.canonical_solution or ""):
            if len(normalized := normalize(text)) >= min_chars:
                strings.append((problem.task_id, normalized))
    return strings


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def item_text(item: Item) -> str:
    return "\n".join(text or "" for text in (item.instruction, item.input, item.output))


def contamination(items: list[Item], problems: list[Problem], cfg: Decontamination,
                  embed: Any = None) -> list[Removal]:
    """The first check that flags each contaminated item (substring, then ngram, then embedding)."""
    strings = benchmark_strings(problems, cfg.substring.min_chars)
    n = cfg.ngram.n
    # The prompt and the solution each on their own: an item holding most of either is a copy (counted
    # together, a copied docstring shares under half of prompt + solution). A part with fewer than
    # min_grams n-grams (a one-line solution) is left to the substring check.
    parts = [(p.task_id, ngrams(text, n)) for p in problems for text in (p.prompt, p.canonical_solution or "")]
    problem_grams = [(task, grams) for task, grams in parts if len(grams) >= cfg.ngram.min_grams]
    similarity = None
    if embed is not None and items and problems:
        similarity = embed([item.instruction for item in items]) @ embed([p.prompt for p in problems]).T
    removals = []
    for i, item in enumerate(items):
        text = normalize(item_text(item))
        if hit := next((task for task, s in strings if s in text), None):
            removals.append(Removal(item.id, "substring", hit, 1.0))
            continue
        grams = ngrams(text, n)
        task, share = max(((t, len(g & grams) / len(g)) for t, g in problem_grams), key=lambda x: x[1], default=("", 0.0))
        if share >= cfg.ngram.threshold:
            removals.append(Removal(item.id, "ngram", task, share))
            continue
        if similarity is not None and similarity[i].max() >= cfg.embedding.threshold:
            j = int(similarity[i].argmax())
            removals.append(Removal(item.id, "embedding", problems[j].task_id, float(similarity[i, j])))
    return removals


def duplicates(items: list[Item], cfg: Dedup) -> list[Removal]:
    """Later items that repeat an earlier one exactly or nearly (estimated Jaccard of word shingles)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    seen: dict[str, str] = {}
    sketches: dict[str, MinHash] = {}
    removals = []
    for item in items:
        text = normalize(item_text(item))
        if text in seen:
            removals.append(Removal(item.id, "duplicate", seen[text], 1.0))
            continue
        sketch = MinHash(num_perm=cfg.num_perm)
        words = WORD.findall(text)
        k = cfg.shingle
        sketch.update_batch([" ".join(words[i:i + k]).encode() for i in range(max(1, len(words) - k + 1))])
        if near := lsh.query(sketch):
            removals.append(Removal(item.id, "duplicate", near[0], sketch.jaccard(sketches[near[0]])))
            continue
        seen[text] = item.id
        sketches[item.id] = sketch
        lsh.insert(item.id, sketch)
    return removals


def decontaminate(items: list[Item], problems: list[Problem], cfg: Decontamination,
                  embed: Any = None) -> tuple[list[Item], list[Removal]]:
    """The items that pass every check, and what was removed and why."""
    removed = contamination(items, problems, cfg, embed)
    flagged = {r.id for r in removed}
    removed += duplicates([item for item in items if item.id not in flagged], cfg.dedup)
    gone = {r.id for r in removed}
    return [item for item in items if item.id not in gone], removed

