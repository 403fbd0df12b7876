"""WaveCoder's generator-discriminator (arXiv 2312.14187 §2.2.2; microsoft/WaveCoder src/data/llm_gen_dis/main.py): what is not a prompt.

The generator's answer is checked by the released code's rules before the discriminator sees it;
the discriminator's verdict (a yes/no checklist with an overall answer) decides; every judged case,
good or bad with its analysis, joins the example bank that later generator prompts sample from.
The released sampler drew characters of the last bad case instead of whole cases: fixed here.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from evolab.backends import Backend, Sampling, teacher_tokens
from evolab.core.records import MethodRecord
from evolab.core.schema import WaveCoder
from evolab.methods.sources import FunctionPair, corpus, function_pairs

NO_INPUT = "<noinput>"
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def sentences(text: str) -> int:
    return max(1, len(SENTENCE_END.findall(text.strip()))) if text.strip() else 0


@dataclass(frozen=True)
class Case:
    """A case the generator writes: WaveCoder's four fields (information NO_INPUT where the task has none)."""
    task_name: str
    instruction: str
    information: str
    solution: str


KEYS = tuple(f.name for f in fields(Case))


def parse_case(text: str) -> tuple[Case | None, str]:
    """The generated case's four fields, or None and the rule it broke (the released main.py's
    extract_message): each key exactly once, at most one field <noinput>, an instruction of one or
    two sentences, information of at most two (missing information becomes <noinput>)."""
    heads = list(re.finditer(rf"(?im)^[\s*#-]*({'|'.join(KEYS)})\s*:", text))
    found = [h.group(1).lower() for h in heads]
    for key in ("task_name", "instruction", "solution"):
        if found.count(key) != 1:
            return None, f"{key}_count_{found.count(key)}"
    if found.count("information") > 1:
        return None, "information_count"
    values = {head.group(1).lower(): text[head.end():following.start() if following else len(text)].strip()
              for head, following in zip(heads, heads[1:] + [None])}
    information = values.pop("information", "") or NO_INPUT
    case = Case(**values, information=information)
    if sum(getattr(case, key) == NO_INPUT for key in KEYS) > 1:
        return None, "noinput_fields"
    if not 1 <= sentences(case.instruction) <= 2:
        return None, "instruction_sentences"
    # Multi-line information is code (the repair and translation tasks' input), not prose to count sentences in.
    if case.information != NO_INPUT and "\n" not in case.information and sentences(case.information) > 2:
        return None, "information_sentences"
    return case, "ok"


def parse_verdict(text: str) -> tuple[bool, str]:
    """Keep a case when the discriminator's overall answer contains no "no"; a verdict without an overall
    answer is a rejection. Returns (keep, the analysis)."""
    overall = re.search(r"(?im)^.*overall answer.*$", text)
    if not overall:
        return False, text.strip()
    answer = overall.group(0).split(":", 1)[-1]
    return not re.search(r"\bno\b", answer.lower()), text.strip()


def format_case(case: Case) -> str:
    return "\n".join(f"{key}: {getattr(case, key)}" for key in KEYS)


@dataclass
class ExampleBank:
    """Judged cases for the generator's few-shot prompt: good ones as they are, bad ones with the
    discriminator's analysis."""
    good: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)

    def add(self, case: Case, keep: bool, analysis: str) -> None:
        if keep:
            self.good.append(format_case(case))
        else:
            self.bad.append(f"{format_case(case)}\n<Analysis>: {analysis}")

    def few_shot(self, n: int, rng: random.Random, good_prefix: str, bad_prefix: str) -> tuple[str, str]:
        """n whole good and n whole bad cases (fewer while the bank is small), each block with its prefix."""
        def block(cases: list[str], prefix: str) -> str:
            return f"{prefix}\n" + "\n\n".join(rng.sample(cases, min(n, len(cases)))) if cases else ""
        return block(self.good, good_prefix), block(self.bad, bad_prefix)


@dataclass
class Generation:
    """One raw function's way through a wave: the task drawn for it and the generator's prompt, the case the
    generator wrote (None when a rule rejected it, with its `response`), and why it was kept or not."""
    id: str
    task: str
    prompt: str
    seed: int
    case: Case | None = None
    response: str = ""
    reason: str | None = None
    analysis: str = ""
    errors: list[str] = field(default_factory=list)
    teacher_tokens: dict[str, int] = field(default_factory=dict)

    def record(self, source: str) -> MethodRecord:
        """The method's record of it (data/generated/wavecoder.jsonl), with where its raw function is."""
        case = self.case or Case("", "", NO_INPUT, "")
        return MethodRecord(
            id=self.id, round=0, instruction=case.instruction,
            input="" if case.information == NO_INPUT else case.information, output=case.solution,
            kept=self.reason == "kept", reason=self.reason or "", errors=self.errors,
            more={"task": self.task, "analysis": self.analysis, "response": self.response,
                  "teacher_tokens": self.teacher_tokens, "source": source})


def generate(raw: list[FunctionPair], method: WaveCoder, backend: Backend, sampling: Sampling, seed: int,
             log: Callable[[str], None] = lambda line: None) -> tuple[list[MethodRecord], ExampleBank]:
    """The generator-discriminator loop over raw (docstring, function) items, in waves of `wave_size`
    (one batch per phase for a batching server); the example bank grows after each wave."""
    system = [{"role": "system", "content": method.system_prompt}]
    tasks = method.tasks
    bank, records = ExampleBank(), []
    for seed_case in method.seed_cases:
        case = Case(seed_case.task_name, seed_case.instruction, seed_case.information, seed_case.solution)
        bank.add(case, seed_case.keep, seed_case.analysis)
    for start in range(0, len(raw), method.wave_size):
        wave = raw[start:start + method.wave_size]
        todo = []
        for i, item in enumerate(wave, start=start):
            rng = random.Random(seed * 1_000_003 + i)
            task = rng.choice(sorted(tasks))
            good, bad = bank.few_shot(method.few_shot, rng, method.good_prefix, method.bad_prefix)
            source = f"Task: {task}. {tasks[task]}\nRaw code:\n{item.docstring}\n{item.code}"
            prompt = method.generator_prompt.format(good_few_shot=good, bad_few_shot=bad, input=source)
            todo.append(Generation(item.id, task, prompt, seed + i))
        cases = backend.generate_all([(system + [{"role": "user", "content": g.prompt}], sampling.with_seed(g.seed))
                                      for g in todo], progress=lambda i, start=start: log(f"generated {start + i + 1}/{len(raw)}"))
        judged = []
        for g, c in zip(todo, cases):
            g.errors = [c.error] if c.error else []
            g.teacher_tokens = teacher_tokens([c])
            case, why = parse_case(c.text) if c.ok and c.finish_reason != "length" else (None, "")
            g.reason = "teacher_error" if not c.ok else "truncated" if c.finish_reason == "length" else (
                None if case else f"rule_{why}")
            g.case = case
            g.response = "" if case else c.text  # what a rule rejected, for the reader
            if case:
                judged.append(g)
        if not method.discriminate:  # the ablation without a discriminator: the rule filter decides
            judged, passed = [], judged
            for g in passed:
                g.reason = "kept"
                bank.add(g.case, True, "")
        verdicts = backend.generate_all(
            [(system + [{"role": "user", "content": method.discriminator_prompt.format(case=format_case(g.case))}],
              sampling.with_seed(g.seed + 1)) for g in judged], progress=lambda i, start=start: log(f"judged {start + i + 1}/{len(raw)}"))
        for g, v in zip(judged, verdicts):
            keep, analysis = parse_verdict(v.text) if v.ok else (False, "")
            g.reason = "kept" if keep else "teacher_error" if not v.ok else "discriminator_no"
            g.analysis = analysis
            g.errors += [v.error] if v.error else []
            g.teacher_tokens = teacher_tokens([v], g.teacher_tokens)
            if v.ok:
                bank.add(g.case, keep, analysis)
        records += [g.record(item.source) for g, item in zip(todo, wave)]
    return records, bank


def make_data(cfg: WaveCoder, count: int, max_tokens: int, seed: int, backend: Backend,
              log: Callable[[str], None]) -> tuple[list[MethodRecord], dict[str, Any]]:
    """The method's interface (evolab/methods/__init__.py): `count` (docstring, function) pairs chosen by
    KCenterGreedy, each through the generator and the discriminator; (one record per pair, statistics)."""
    from evolab.curation.embeddings import embed
    from evolab.methods.coreset import k_center_greedy

    source, coreset = cfg.source, cfg.coreset
    pairs = list(function_pairs(corpus(source), source.min_lines, source.max_lines))
    # KCenterGreedy over a random pool: embedding every function of a large tree costs minutes on a CPU.
    pool = random.Random(coreset.seed).sample(pairs, min(coreset.pool, len(pairs)))
    points = embed([f"{p.docstring}\n{p.code}" for p in pool], coreset.embedding)
    chosen = k_center_greedy(points, min(count, len(pool)), coreset.seed)
    raw = [replace(pool[i], id=f"wave-{n:05d}") for n, i in enumerate(chosen)]
    log(f"{len(raw)} raw functions chosen by KCenterGreedy from {len(pool)} of {len(pairs)}")
    records, bank = generate(raw, cfg, backend, Sampling.of(cfg.sampling, max_tokens), seed, log)
    outcomes = [(r.more["task"], r.kept) for r in records]
    tasks = {task: {"generated": sum(t == task for t, _ in outcomes), "kept": sum(t == task and kept for t, kept in outcomes)}
             for task in sorted(cfg.tasks)}
    return records, {"tasks": tasks, "raw_pairs": len(pairs), "coreset_pool": len(pool),
                     "bank_good": len(bank.good), "bank_bad": len(bank.bad)}
