"""Evaluation: prompts that fit the model, generation through a backend, code extraction,
checking by evalplus in an isolated child, and greedy or sampled pass@k with a 95 % interval."""
from __future__ import annotations

import ast
import itertools
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from evolab.backends import Backend, Sampling
from evolab.core.prompts import eval_request
from evolab.core.records import Problem, Record, write_jsonl, write_rows
from evolab.core.schema import EvalSettings, TrainSettings
from evolab.evaluation.sandbox import check_solutions
from evolab.evaluation.suites import Benchmark, for_checker, metric_suite


def sampling_for(style: str, eval_cfg: EvalSettings) -> Sampling:
    """eval's sampling; a base model's completion stops at evalplus's stop words (eval.base_stop), a
    chat answer once its first code block has closed (the extractor reads nothing after it)."""
    s = eval_cfg.sampling
    return Sampling(max_tokens=eval_cfg.max_tokens, temperature=s.temperature, top_p=s.top_p,
                    seed=s.seed, stop=tuple(eval_cfg.base_stop) if style == "base" else (),
                    until_code_block=style != "base")


def extract_code(problem: Problem, response: str, style: str = "instruct") -> str:
    """evalplus's codegen extraction: `sanitize` of the answer, or of prompt + completion for a base
    model (evalplus/codegen.py: `prompt + impl if model.is_direct_completion() else impl`)."""
    from evalplus.sanitize import sanitize

    if style == "base":
        response = problem.prompt.strip() + "\n" + response
    return sanitize(response, problem.entry_point)


def static_failure(problem: Problem, code: str) -> str | None:
    """A failure visible before running: nothing extracted, or code that does not parse."""
    if f"def {problem.entry_point}" not in code:
        return "no_code"
    try:
        ast.parse(code)
    except SyntaxError:
        return "syntax_error"
    return None


@dataclass
class Verdict:
    """evalplus's verdict on one solution: its base and plus statuses (plus None without plus tests)."""
    base_status: str
    plus_status: str | None
    passed: bool


@dataclass
class Sample:
    """One answer of the student to a problem: the response, the code extracted from it, and its verdict."""
    task_id: str
    sample: int
    response: str
    finish_reason: str
    completion_tokens: int
    error: str | None
    solution: str
    static: str | None                # a failure visible before running (static_failure); not written
    verdict: Verdict | None = None    # evalplus's, once checked

    @property
    def kind(self) -> str:
        return failure_kind(self.static, self.verdict)

    def row(self) -> Record:
        """Its line of samples.jsonl: what it answered, then its verdict and the kind of failure."""
        answered = {key: value for key, value in asdict(self).items() if key not in ("static", "verdict")}
        return {**answered, **asdict(self.verdict), "kind": self.kind}


def score(benchmark: Benchmark, problems: list[Problem], solutions: list[tuple[str, str]], work_dir: Path,
          sandbox: str, memory_mb: int) -> list[Verdict]:
    """Check solutions ((task_id, code), any number per task) with evalplus; one verdict per solution, in order."""
    work_dir.mkdir(parents=True, exist_ok=True)
    by_id = {p.task_id: p for p in problems}
    checked = [for_checker(by_id[task_id], code) for task_id, code in solutions]
    write_rows({p.task_id: p for p, _ in checked}.values(), work_dir / "problems.jsonl")
    write_jsonl([{"task_id": p.task_id, "solution": code} for p, code in checked], work_dir / "samples.jsonl")
    result = check_solutions(benchmark.dataset, work_dir / "problems.jsonl", work_dir / "samples.jsonl",
                             base_only=not benchmark.plus, sandbox=sandbox, memory_mb=memory_mb)
    cursor: Counter[str] = Counter()
    verdicts = []
    for task_id, _ in solutions:  # evalplus keeps each task's samples in submission order
        row = result["eval"][task_id][cursor[task_id]]
        cursor[task_id] += 1
        base, plus = row["base_status"], row["plus_status"]
        verdicts.append(Verdict(base, plus, base == "pass" and (not benchmark.plus or plus == "pass")))
    return verdicts


def failure_kind(static: str | None, verdict: Verdict) -> str:
    if static:
        return static
    if verdict.base_status != "pass":
        return "timeout" if verdict.base_status == "timeout" else "wrong_or_error"
    if verdict.plus_status not in (None, "pass"):
        return "plus_timeout" if verdict.plus_status == "timeout" else "plus_wrong_or_error"
    return "pass"


def pass_at_k(correct: list[int], n: int, k: int) -> float:
    from evalplus.eval import estimate_pass_at_k

    return float(estimate_pass_at_k(n, correct, k).mean()) if correct else 0.0


def bootstrap_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % interval for a mean over problems (pass@1 or per-problem pass rates), resampling problems."""
    import numpy as np

    if not values:
        return 0.0, 0.0
    outcomes = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = outcomes[rng.integers(0, len(outcomes), size=(resamples, len(outcomes)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def suite_metrics(per_problem: list[dict[str, Any]], key: str, n: int, ks: list[int]) -> dict[str, Any]:
    correct = [p[key] for p in per_problem]
    metrics: dict[str, Any] = {f"pass@{k}": pass_at_k(correct, n, k) for k in ks if k <= n}
    low, high = bootstrap_ci([c / n for c in correct])
    metrics.update({"pass@1_ci95_low": low, "pass@1_ci95_high": high, "solved": sum(c > 0 for c in correct)})
    return metrics


def evaluate(benchmark: Benchmark, problems: list[Problem], backend: Backend, style: str, eval_cfg: EvalSettings,
             train_cfg: TrainSettings, work_dir: Path,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate n samples per problem, extract, check; write samples.jsonl and per_problem.jsonl to
    work_dir and return the metrics: pass@k per suite (base, and plus where the benchmark has it).
    style: base or instruct (the untuned student, by model.kind) or tuned (its training format)."""
    n = int(eval_cfg.sampling.n)
    base_sampling = sampling_for(style, eval_cfg)
    jobs = [(p, i) for p in problems for i in range(n)]
    requests = [(eval_request(p, style, eval_cfg, train_cfg), base_sampling.with_seed(base_sampling.seed + i)) for p, i in jobs]
    start = time.perf_counter()
    backend.start(requests)
    started = time.perf_counter()
    finished = itertools.count(1)  # a batching backend finishes answers out of order
    completions = backend.generate_all(
        requests, progress=lambda i: log(f"eval: {next(finished)}/{len(requests)} {jobs[i][0].task_id}"))
    generate_seconds, start_seconds = time.perf_counter() - started, started - start
    samples = []
    for (problem, i), completion in zip(jobs, completions):
        code = extract_code(problem, completion.text, style)
        samples.append(Sample(problem.task_id, i, completion.text, completion.finish_reason,
                              completion.completion_tokens, completion.error, code, static_failure(problem, code)))
    start = time.perf_counter()
    verdicts = score(benchmark, problems, [(s.task_id, s.solution) for s in samples], work_dir / "checker",
                     eval_cfg.sandbox, eval_cfg.memory_mb)
    check_seconds = time.perf_counter() - start
    for sample, verdict in zip(samples, verdicts):
        sample.verdict = verdict
    write_jsonl([s.row() for s in samples], work_dir / "samples.jsonl")
    by_task: dict[str, list[Sample]] = {p.task_id: [] for p in problems}
    for sample in samples:
        by_task[sample.task_id].append(sample)
    per_problem = []
    for task_id, mine in by_task.items():
        per_problem.append({
            "task_id": task_id, "n": n,
            "base_correct": sum(s.verdict.base_status == "pass" for s in mine),
            "correct": sum(s.verdict.passed for s in mine),
            "passed": mine[0].verdict.passed,  # the first (with n=1, the greedy) sample
            "kind": Counter(s.kind for s in mine).most_common(1)[0][0],
        })
    write_jsonl(per_problem, work_dir / "per_problem.jsonl")
    ks = [int(k) for k in eval_cfg.k]
    dataset = metric_suite(benchmark.name)
    plus = {f"{dataset}_plus": suite_metrics(per_problem, "correct", n, ks)} if benchmark.plus else {}
    return {
        dataset: suite_metrics(per_problem, "base_correct", n, ks), **plus,
        "failures": dict(Counter(s.kind for s in samples if s.kind != "pass")),
        # Where the time goes: the engine's start (vLLM), generation with prompt processing (cached ones take ~0 s), checking.
        "seconds": {"start": round(start_seconds, 1), "generate": round(generate_seconds, 1), "check": round(check_seconds, 1)},
        "completion_tokens": sum(s.completion_tokens for s in samples),
        "stopped_at_max_tokens": sum(s.finish_reason == "length" for s in samples),
    }
