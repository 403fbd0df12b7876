"""OSS-Instruct (Magicoder, arXiv 2312.02120): a problem and its solution inspired by a real code snippet.

The prompt and seeds are the paper's (ise-uiuc/magicoder data/prompt.txt, generate_data.py); this module holds what
is not a prompt: parsing the teacher's answer and Magicoder's cleaning.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable

from evolab.backends import Backend, Sampling, teacher_tokens
from evolab.core.prompts import chat_messages
from evolab.core.records import MethodRecord
from evolab.core.schema import OssInstruct
from evolab.methods.sources import Snippet, corpus, snippets


def is_marker(line: str, name: str) -> bool:
    """Magicoder's test (the line contains "[name]"), and a line that is only the name as a markdown
    heading or bold label, which small teachers write instead ("### Problem Description")."""
    low = line.lower()
    return f"[{name}]" in low or low.strip(" #*[]:_\t") == name


def parse_problem_solution(text: str) -> tuple[str, str] | None:
    """Magicoder's parsing: the text between the first [Problem Description] line and the first
    [Solution] line, and everything after; None when either is missing, misordered or empty."""
    lines = text.splitlines()

    def first(name: str) -> int | None:
        return next((i for i, line in enumerate(lines) if is_marker(line, name)), None)

    problem_at, solution_at = first("problem description"), first("solution")
    if problem_at is None or solution_at is None or solution_at <= problem_at:
        return None
    problem = "\n".join(lines[problem_at + 1:solution_at]).strip()
    solution = "\n".join(lines[solution_at + 1:]).strip()
    return (problem, solution) if problem and solution else None


@dataclass(frozen=True)
class Repeat:
    """A sample Magicoder's cleaning drops: its `field` (seed, problem or solution) repeats sample `repeats`'s."""
    id: str
    field: str
    repeats: str


def clean(records: list[MethodRecord], seed: int) -> tuple[list[MethodRecord], list[Repeat]]:
    """Magicoder's clean_data: shuffle, then drop a sample whose whitespace-stripped seed, problem or
    solution repeats an earlier sample's. Returns the kept samples and the dropped ones."""
    order = list(records)
    random.Random(seed).shuffle(order)
    first_seen: dict[tuple[str, str], str] = {}
    kept, dropped = [], []
    for record in order:
        keys = [(field, "".join(str(record.more[field]).split())) for field in ("seed", "problem", "solution")]
        repeat = next((key for key in keys if key in first_seen), None)
        if repeat:
            dropped.append(Repeat(record.id, repeat[0], first_seen[repeat]))
            continue
        for key in keys:
            first_seen[key] = record.id
        kept.append(record)
    return kept, dropped


def generate(seeds: list[Snippet], method: OssInstruct, backend: Backend, system_prompt: str | None,
             sampling: Sampling, log: Callable[[str], None] = lambda line: None) -> list[MethodRecord]:
    """One teacher call per seed snippet; every record says whether it was kept and why not (a failed
    call after the backend's retries is `teacher_error`, recorded with its error)."""
    requests = [(chat_messages(system_prompt, method.template.format(code=s.code)),
                 sampling.with_seed(method.sampling_seed + i)) for i, s in enumerate(seeds)]
    completions = backend.generate_all(requests, progress=lambda i: log(f"generated {i + 1}/{len(seeds)} {seeds[i].id}"))
    records = []
    for s, c in zip(seeds, completions):
        parsed = parse_problem_solution(c.text) if c.ok and c.finish_reason != "length" else None
        reason = "teacher_error" if not c.ok else "truncated" if c.finish_reason == "length" else "unparsed" if not parsed else "kept"
        problem, solution = parsed or ("", "")
        records.append(MethodRecord(
            id=s.id, round=0, instruction=method.instruction.format(problem=problem) if parsed else "", input="",
            output=solution, kept=parsed is not None, reason=reason, errors=[c.error] if c.error else [],
            more={"seed": s.code, "source": s.source, "problem": problem, "solution": solution,
                  "answer_tokens": c.completion_tokens, "teacher_tokens": teacher_tokens([c])}))
    return records


def make_data(cfg: OssInstruct, count: int, max_tokens: int, seed: int, backend: Backend,
              log: Callable[[str], None]) -> tuple[list[MethodRecord], dict[str, Any]]:
    """The method's interface (evolab/methods/__init__.py): `count` random snippets of the source, one teacher
    call each, then Magicoder's cleaning; (one record per call, extra statistics)."""
    source = cfg.source
    seeds = snippets(corpus(source), count, source.seed, source.min_lines, source.max_lines)
    records = generate(seeds, cfg, backend, cfg.system_prompt,
                                    Sampling.of(cfg.sampling, max_tokens), log)
    _, dropped = clean([r for r in records if r.kept], cfg.clean_seed)
    repeats = {d.id: d for d in dropped}
    for r in records:
        if r.id in repeats:  # Magicoder's cleaning: a repeated seed, problem or solution
            r.kept, r.reason = False, f"repeated_{repeats[r.id].field}"
    return records, {"cleaning_drops": [asdict(d) for d in dropped]}
