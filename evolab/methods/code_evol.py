"""Code Evol-Instruct (WizardCoder §3.1): one evolution round, with WizardLM-style elimination."""
from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from evolab.backends import Backend, Completion, Sampling, teacher_tokens
from evolab.core.cache import cache_key
from evolab.core.prompts import chat_messages, question_of
from evolab.core.records import MethodRecord
from evolab.core.schema import AnswerRules, CodeEvol, Elimination, NotTask

STOP_WORDS = frozenset("a an the and or of to in is it this that be for on with as".split())


def item_seed(seed: int, round_k: int, item_id: str) -> int:
    """A per-item seed: the same item gets the same heuristic and sampling seed in any run order."""
    return int(cache_key(seed=seed, round=round_k, id=item_id)[:8], 16)


@dataclass(frozen=True)
class Parent:
    """An item a round evolves: its record's id and its question (the instruction, and its input on the next line)."""
    id: str
    question: str


def pool_for_next_round(records: list[MethodRecord], on_failure: str) -> list[Parent]:
    """Round k's records -> the items round k+1 evolves. A failed item's parent returns to the pool
    (`on_failure: parent`) or leaves it (`drop`)."""
    pool = []
    for r in records:
        if r.kept:  # seed records (round 0) are kept and keep their input
            pool.append(Parent(r.id, question_of(r.instruction, r.input)))
        elif on_failure == "parent":
            pool.append(Parent(r.id, question_of(r.more["parent_instruction"])))
    return pool


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _is_trivial(text: str) -> bool:
    words = [w.strip(string.punctuation) for w in text.lower().split()]
    return all(not w or w in STOP_WORDS for w in words)


def instruction_failure(parent: str, evolved: Completion, rules: Elimination) -> str | None:
    """Why an evolved instruction failed (WizardLM's elimination cases adapted to code), or None."""
    if not evolved.ok:
        return "teacher_error"
    text = evolved.text.strip()
    if not text:
        return "empty_instruction"
    if evolved.finish_reason == "length":
        return "truncated_instruction"
    if _normalise(text) == _normalise(parent):
        return "unchanged"
    if any(phrase in text.lower() for phrase in rules.leak_phrases):
        return "template_leak"
    if failure := task_failure(text, rules.not_task):
        return failure
    if len(text.split()) < len(parent.split()) + rules.min_added_words:
        return "not_harder"  # fewer words than its parent (plus min_added_words): it asks no more of it
    return None


FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import|return\b|for .+:|while .+:|if .+:|elif |else:|try:|"
                       r"except\b|print\(|#|@|\w+(\[.*\])? = )|[:{}()\[\],]\s*$")


def task_failure(text: str, rules: NotTask) -> str | None:
    """Why an evolved instruction is not a task, or None (a 0.5B teacher often answers the
    evolution prompt instead of rewriting the question). Checked in order:
    solution_not_task (it presents a solution, or opens with code and goes on to describe it), code_not_task (mostly code, no task sentence),
    statement_not_task (it opens as a statement of how to do it: "You can ...", "To solve ..."),
    meta_not_task (it talks about making the question harder), no_task (no request at all)."""
    lower = text.strip().lower()
    prose = FENCED.sub(" ", lower)
    words = set(re.findall(r"[a-z']+", prose))
    asks = "?" in prose or any(w in prose if " " in w else w in words for w in rules.task_words)
    lines = [line for line in text.splitlines() if line.strip()]
    fenced_lines = sum(len([x for x in block.splitlines() if x.strip()]) for block in FENCED.findall(text))
    code_lines = fenced_lines + sum(bool(CODE_LINE.search(line)) for line in FENCED.sub("", text).splitlines() if line.strip())
    if any(phrase in prose for phrase in rules.solution_phrases):
        return "solution_not_task"
    if lower.startswith("```") and FENCED.sub("", lower, count=1).strip().startswith(tuple(rules.code_then)):
        return "solution_not_task"  # a code block, then a description of it
    if lines and code_lines / len(lines) >= rules.max_code_share and not asks:
        return "code_not_task"
    if lower.startswith(tuple(rules.statement_openers)):
        return "statement_not_task"
    if any(phrase in prose for phrase in rules.meta_phrases):
        return "meta_not_task"
    return None if asks else "no_task"


def answer_failure(answer: Completion, rules: AnswerRules | Elimination) -> str | None:
    """Why the teacher's answer to an evolved instruction disqualifies it, or None."""
    if not answer.ok:
        return "teacher_error"
    reply = answer.text.strip()
    if not reply or _is_trivial(reply):
        return "empty_answer"
    if len(reply.split()) < rules.refusal_max_words and any(w in reply.lower() for w in rules.refusal_words):
        return "refusal"
    if answer.finish_reason == "length":
        return "truncated_answer"
    return None


def clean_instruction(text: str) -> str:
    """Drop a chat preamble line such as 'Sure! Here is the harder version:' before the question."""
    lines = text.strip().splitlines()
    if len(lines) > 1 and lines[0].rstrip().endswith(":") and re.match(r"^\W*(sure|certainly|here)", lines[0], re.I):
        lines = lines[1:]
    return "\n".join(lines).strip()


def judge_failure(verdict: Completion) -> str | None:
    """WizardLM's first elimination case: the judge finds the two instructions equal."""
    if not verdict.ok:
        return "teacher_error"
    text = verdict.text.strip().lower()
    return "no_information_gain" if "equal" in text and "not equal" not in text else None


def evolution_template(method: CodeEvol, note: str | None) -> str:
    """The paper's template, with the teacher's note after it when its teacher needs one (teacher.evolve_note: a
    small instruct model told to write the question only; a departure from WizardCoder's prompt, for that teacher)."""
    return f"{method.template}\n\n{note}" if note else method.template


@dataclass
class Evolution:
    """One pool item's way through a round: the heuristic drawn for it, its teacher calls, the evolved instruction
    and its answer, and why it was eliminated (None while it survives)."""
    id: str
    heuristic: str
    parent_instruction: str
    seed: int
    calls: list[Completion] = field(default_factory=list)
    instruction: str = ""
    instruction_tokens: int = 0
    output: str = ""
    answer_tokens: int = 0
    reason: str | None = None

    @property
    def errors(self) -> list[str]:
        return [c.error for c in self.calls if c.error]

    @property
    def retried_calls(self) -> int:
        return sum(c.attempts > 1 for c in self.calls)

    def record(self, round_k: int) -> MethodRecord:
        """The round's record of this item (data/evolve/rK.jsonl): kept or not, and why."""
        return MethodRecord(
            id=self.id, round=round_k, instruction=self.instruction, input="", output=self.output,
            kept=self.reason is None, reason=self.reason or "kept", errors=self.errors,
            more={"heuristic": self.heuristic, "parent_instruction": self.parent_instruction,
                  "retried_calls": self.retried_calls, "instruction_tokens": self.instruction_tokens,
                  "answer_tokens": self.answer_tokens, "teacher_tokens": teacher_tokens(self.calls)})


def evolve_items(pool: list[Parent], round_k: int, method: CodeEvol, backend: Backend, system_prompt: str | None,
                 evolve_sampling: Sampling, answer_sampling: Sampling, seed: int,
                 log: Callable[[str], None] = lambda line: None) -> list[Evolution]:
    """One round over the pool, in phases (evolve all, judge the survivors, answer the survivors),
    so a remote teacher gets concurrent requests and vLLM one batch per phase."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    ask = lambda text: system + [{"role": "user", "content": text}]  # noqa: E731
    rules = method.elimination
    items = []
    for parent in pool:
        s = item_seed(seed, round_k, parent.id)
        heuristic = random.Random(s).choice(sorted(method.heuristics))
        items.append(Evolution(parent.id, heuristic, parent.question, s))

    def phase(name: str, todo: list[Evolution], request: Callable[[Evolution], tuple[Any, Sampling]]) -> list[Completion]:
        results = backend.generate_all([request(e) for e in todo],
                                       progress=lambda i: log(f"{name} {i + 1}/{len(todo)} {todo[i].id}"))
        for e, c in zip(todo, results):
            e.calls.append(c)
        return results

    evolved = phase("evolved", items, lambda e: (
        ask(method.template.format(method=method.heuristics[e.heuristic], question=e.parent_instruction)),
        evolve_sampling.with_seed(e.seed)))
    for e, c in zip(items, evolved):
        e.instruction = clean_instruction(c.text)
        e.instruction_tokens = c.completion_tokens
        e.reason = instruction_failure(e.parent_instruction, Completion(e.instruction, c.finish_reason, error=c.error), rules)
    if method.judge:
        todo = [e for e in items if e.reason is None]
        judge_sampling = Sampling(max_tokens=8)
        verdicts = phase("judged", todo, lambda e: (
            ask(method.judge.format(first=e.parent_instruction, second=e.instruction)), judge_sampling.with_seed(e.seed + 2)))
        for e, c in zip(todo, verdicts):
            e.reason = judge_failure(c)
    todo = [e for e in items if e.reason is None]
    answers = phase("answered", todo, lambda e: (ask(e.instruction), answer_sampling.with_seed(e.seed + 1)))
    for e, c in zip(todo, answers):
        e.output = c.text.strip()
        e.answer_tokens = c.completion_tokens
        e.reason = answer_failure(c, rules)
    return items


def answer_seeds(records: list[MethodRecord], backend: Backend, system_prompt: str | None, sampling: Sampling, seed: int,
                 rules: AnswerRules, log: Callable[[str], None] = lambda line: None) -> list[MethodRecord]:
    """Round 0 answered like every round: the teacher answers each seed instruction (Code Alpaca's outputs,
    the paper's seed set, were model-written). The seed file's own output stays as `reference`; where the
    teacher's answer fails (error, truncated, refusal, empty) the item keeps the reference output and says
    why in `answer_reason` (merge trains on no item without an output; every seed still evolves)."""
    requests = [(chat_messages(system_prompt, question_of(r.instruction, r.input)),
                 sampling.with_seed(item_seed(seed, 0, r.id) + 1)) for r in records]
    answers = backend.generate_all(requests, progress=lambda i: log(f"answered {i + 1}/{len(records)} {records[i].id}"))
    out = []
    for r, answer in zip(records, answers):
        failure = answer_failure(answer, rules)
        output = answer.text.strip() if failure is None else r.output
        out.append(replace(r, output=output, errors=[answer.error] if answer.error else [],
                           more={**r.more, "reference": r.output, "answer_reason": failure or "teacher",
                                 "answer_tokens": answer.completion_tokens, "teacher_tokens": teacher_tokens([answer]),
                                 "retried_calls": int(answer.attempts > 1)}))
    return out


def round_stats(evolutions: list[Evolution]) -> dict[str, Any]:
    kept = [e for e in evolutions if e.reason is None]
    mean = lambda xs: round(sum(xs) / len(xs), 1) if xs else 0.0  # noqa: E731
    return {
        "items": len(evolutions),
        "kept": len(kept),
        "eliminated": len(evolutions) - len(kept),
        "reasons": dict(Counter(e.reason or "kept" for e in evolutions)),
        "heuristics": dict(Counter(e.heuristic for e in evolutions)),
        "failed_calls": [e.id for e in evolutions if e.errors],
        "retried_calls": sum(e.retried_calls for e in evolutions),
        "mean_instruction_tokens": mean([e.instruction_tokens for e in kept]),
        "mean_answer_tokens": mean([e.answer_tokens for e in kept]),
    }
