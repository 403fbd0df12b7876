"""Evaluation through evalplus, offline, on the code path the pipeline uses."""
import json
from dataclasses import replace

import pytest
from helpers import default_experiment, settings

from evolab.backends.base import Backend, Completion
from evolab.core.config import resolve
from evolab.core.records import Problem
from evolab.evaluation.harness import bootstrap_ci, extract_code, pass_at_k, score
from evolab.evaluation.suites import BenchmarkUnavailable, load_benchmark, select

CHECK = {"sandbox": "auto", "memory_mb": 2048}


@pytest.fixture(scope="module")
def humaneval():
    return load_benchmark("humaneval")


def run_score(benchmark, problems, solutions, tmp_path):
    samples = [(p.task_id, solutions[p.task_id]) for p in problems]
    rows = score(benchmark, problems, samples, tmp_path, CHECK["sandbox"], CHECK["memory_mb"])
    return {task_id: r for (task_id, _), r in zip(samples, rows)}


def test_offline_humaneval_has_all_problems_with_recorded_base_inputs(humaneval):
    assert len(humaneval.problems) == 164 and not humaneval.plus
    assert all(p.more["base_input"] for p in humaneval.problems)
    assert all(p.more["plus_input"] == [] for p in humaneval.problems)


def test_canonical_solutions_score_164_of_164_including_find_zero(humaneval, tmp_path):
    problems = humaneval.problems
    results = run_score(humaneval, problems, {p.task_id: p.prompt + p.canonical_solution for p in problems}, tmp_path)
    assert [t for t, r in results.items() if not r.passed] == []
    assert results["HumanEval/32"].passed


def test_wrong_solutions_score_zero(humaneval, tmp_path):
    results = run_score(humaneval, humaneval.problems, {p.task_id: p.prompt + "    return None\n" for p in humaneval.problems}, tmp_path)
    assert not any(r.passed for r in results.values())


def test_a_wrong_root_for_find_zero_fails(humaneval, tmp_path):
    find_zero = [p for p in humaneval.problems if p.task_id == "HumanEval/32"]
    results = run_score(humaneval, find_zero, {"HumanEval/32": find_zero[0].prompt + "    return 12345.0\n"}, tmp_path)
    assert not results["HumanEval/32"].passed


def test_plus_benchmarks_offline_fail_clearly_naming_the_variable(monkeypatch):
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH", raising=False)
    monkeypatch.delenv("MBPP_OVERRIDE_PATH", raising=False)
    with pytest.raises(BenchmarkUnavailable, match="HUMANEVAL_OVERRIDE_PATH"):
        load_benchmark("humaneval+")
    with pytest.raises(BenchmarkUnavailable, match="MBPP_OVERRIDE_PATH"):
        load_benchmark("mbpp")


def test_a_base_only_file_is_never_reported_as_plus(humaneval, monkeypatch):
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", humaneval.source)
    with pytest.raises(BenchmarkUnavailable, match="no plus tests"):
        load_benchmark("humaneval+")


def test_plus_tests_catch_a_solution_that_only_fits_the_base_tests(humaneval, tmp_path, monkeypatch):
    """A HumanEval+ file (the base problems with extra inputs) through the override variable:
    a solution that memorised the base tests passes humaneval and fails humaneval+."""
    problems = select(humaneval.problems, 3)
    plus = [{**p.row(), "plus_input": p.more["base_input"] + [p.more["base_input"][0]]} for p in humaneval.problems]
    plus[0]["plus_input"] = [[[1.0, 2.5, 3.9, 4.4], 0.45]]  # has_close_elements: True
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in plus))
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(path))
    benchmark = load_benchmark("humaneval+")
    assert benchmark.plus and benchmark.dataset == "humaneval"
    first = problems[0]
    memorised = (first.prompt + first.canonical_solution + f"\n_real = {first.entry_point}\n"
                 f"KNOWN = {first.more['base_input']!r}\n"
                 f"def {first.entry_point}(*args):\n    result = _real(*args)\n"
                 "    return result if list(args) in KNOWN else not result\n")
    solutions = {p.task_id: p.prompt + p.canonical_solution for p in problems}
    solutions["HumanEval/0"] = memorised
    results = run_score(benchmark, select(benchmark.problems, 3), solutions, tmp_path / "check")
    first = results["HumanEval/0"]
    assert first.base_status == "pass" and first.plus_status == "fail" and not first.passed
    assert results["HumanEval/1"].passed and results["HumanEval/1"].plus_status == "pass"


def test_task_list_selects_exactly_those_tasks(humaneval):
    chosen = select(humaneval.problems, None, ["HumanEval/32", "HumanEval/7"])
    assert [p.task_id for p in chosen] == ["HumanEval/7", "HumanEval/32"]
    with pytest.raises(BenchmarkUnavailable, match="HumanEval/999"):
        select(humaneval.problems, None, ["HumanEval/999"])


def test_extraction_survives_fences_prose_and_repeats(humaneval):
    problem = humaneval.problems[0]
    body = problem.canonical_solution
    response = (
        "Sure! Here is the solution:\n```python\n" + problem.prompt + body + "```\n"
        "And again, for clarity:\n```python\n" + problem.prompt + body + "\nprint(has_close_elements([1.0], 0.5))\n```\n"
    )
    code = extract_code(problem, response)
    assert code.count(f"def {problem.entry_point}") == 1 and "print(" not in code and "Sure" not in code
    # As evalplus's codegen: a chat answer is sanitized alone, a base completion after its prompt.
    assert f"def {problem.entry_point}" not in extract_code(problem, body)
    assert f"def {problem.entry_point}" in extract_code(problem, body, style="base")


def test_pass_at_k_is_the_unbiased_estimator():
    # n=4 samples, c correct: pass@1 = c/n, pass@2 = 1 - C(n-c,2)/C(n,2)
    assert pass_at_k([2, 0, 4], n=4, k=1) == pytest.approx((0.5 + 0 + 1) / 3)
    assert pass_at_k([2, 0, 4], n=4, k=2) == pytest.approx((1 - 1 / 6 + 0 + 1) / 3)


def test_bootstrap_interval_brackets_pass_at_1_and_narrows_with_more_problems():
    low, high = bootstrap_ci([1.0, 0.0] * 10)
    assert low < 0.5 < high
    wide = high - low
    low, high = bootstrap_ci([1.0, 0.0] * 80)
    assert low < 0.5 < high and high - low < wide
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)


@pytest.mark.slow  # the real model on HumanEval problems, twice
def test_greedy_evaluation_of_the_embedded_model_repeats_exactly(humaneval, tmp_path):
    """The pipeline's evaluate() on three problems, twice with fresh backends: identical per-sample results."""

    from evolab.backends import make_backend
    from evolab.core.records import read_jsonl
    from evolab.evaluation.harness import evaluate

    params = default_experiment()
    eval_cfg = replace(params.eval, max_tokens=256)
    problems = select(humaneval.problems, None, ["HumanEval/0", "HumanEval/2", "HumanEval/32"])
    runs = []
    for name in ("first", "second"):
        backend = make_backend({"backend": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct"})
        metrics = evaluate(humaneval, problems, backend, "instruct", eval_cfg, params.train, tmp_path / name)
        runs.append((metrics, read_jsonl(tmp_path / name / "samples.jsonl")))
    (m1, s1), (m2, s2) = runs
    assert m1.pop("seconds")["generate"] > 0 and m2.pop("seconds")  # wall times differ run to run; nothing else may
    assert m1 == m2 and s1 == s2
    assert {s["kind"] for s in s1} <= {"pass", "no_code", "syntax_error", "timeout", "wrong_or_error"}
    assert m1["humaneval"]["pass@1"] == sum(s["passed"] for s in s1) / 3


def test_the_dev_set_checks_its_canonical_solutions_and_fails_wrong_ones(tmp_path):
    dev = load_benchmark("evolab-dev")
    humaneval_prompts = {p.prompt for p in load_benchmark("humaneval").problems}
    assert len(dev.problems) == 24 and not humaneval_prompts & {p.prompt for p in dev.problems}
    assert all(len(p.more["base_input"]) >= 3 for p in dev.problems)
    canonical = run_score(dev, dev.problems, {p.task_id: p.prompt + p.canonical_solution for p in dev.problems},
                          tmp_path / "canonical")
    assert all(r.passed for r in canonical.values())
    wrong = run_score(dev, dev.problems, {p.task_id: p.prompt + "    return None\n" for p in dev.problems},
                      tmp_path / "wrong")
    assert not any(r.passed for r in wrong.values())


def fenced(code: str) -> str:
    """A chat answer: the code in a Python block."""
    return "```python\n" + code + "```"


class Scripted(Backend):
    """A backend whose answers are given per function name (found in the request) and sample seed."""

    identity = {"backend": "scripted"}

    def __init__(self, answers):
        super().__init__({"retries": 0})
        self.answers, self.asked = answers, []

    def _generate(self, request, sampling):
        self.asked.append((request, sampling))
        prompt = request if isinstance(request, str) else request[-1]["content"]
        text, reason = next(a for name, a in self.answers.items() if f"def {name}(" in prompt)[sampling.seed]
        return Completion(text, reason, completion_tokens=len(text.split()))


def test_evaluate_writes_every_sample_and_scores_each_kind_of_answer(humaneval, tmp_path):
    """Two samples per problem: a right and a wrong answer, no code and a wrong answer; the metrics,
    samples.jsonl and per_problem.jsonl count each where it belongs (the sandbox checks them)."""
    from helpers import compose_params

    from evolab.backends import Sampling
    from evolab.evaluation.harness import evaluate

    problems = select(humaneval.problems, None, ["HumanEval/0", "HumanEval/2"])
    right = fenced(problems[0].prompt + problems[0].canonical_solution)
    wrong = fenced(problems[0].prompt + "    return None\n")
    wrong_too = "```python\ndef truncate_number(number: float) -> float:\n    return number\n```"
    backend = Scripted({"has_close_elements": [(right, "stop"), (wrong, "stop")],
                        "truncate_number": [("I would rather not.", "length"), (wrong_too, "stop")]})
    params = resolve(compose_params(["eval.sampling.n=2", "eval.k=[1,2]", "eval.max_tokens=64", "eval.sampling.temperature=0.7",
                                     "eval.sampling.top_p=0.9"], tmp_path / "params.yaml"))
    logged = []
    metrics = evaluate(humaneval, problems, backend, "instruct", params.eval, params.train, tmp_path,
                       log=logged.append)

    assert [s for _, s in backend.asked] == [Sampling(max_tokens=64, temperature=0.7, top_p=0.9, seed=i, until_code_block=True)
                                             for i in (0, 1, 0, 1)]
    assert "truncate_number" in backend.asked[2][0][-1]["content"] and logged[-1].startswith("eval: 4/4 HumanEval/")
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(s["task_id"], s["sample"], s["kind"]) for s in samples] == [
        ("HumanEval/0", 0, "pass"), ("HumanEval/0", 1, "wrong_or_error"), ("HumanEval/2", 0, "no_code"),
        ("HumanEval/2", 1, "wrong_or_error")]
    assert samples[0]["response"] == right and samples[0]["passed"] and samples[2]["finish_reason"] == "length"
    per_problem = [json.loads(line) for line in (tmp_path / "per_problem.jsonl").read_text().splitlines()]
    assert per_problem == [
        {"task_id": "HumanEval/0", "n": 2, "base_correct": 1, "correct": 1, "passed": True, "kind": "pass"},
        {"task_id": "HumanEval/2", "n": 2, "base_correct": 0, "correct": 0, "passed": False, "kind": "no_code"}]
    suite = metrics["humaneval"]
    assert (suite["pass@1"], suite["pass@2"], suite["solved"]) == (0.25, 0.5, 1) and "humaneval_plus" not in metrics
    assert suite["pass@1_ci95_low"] == 0.0 and suite["pass@1_ci95_high"] == 0.5
    assert metrics["failures"] == {"wrong_or_error": 2, "no_code": 1}
    assert metrics["completion_tokens"] == sum(len(s["response"].split()) for s in samples)
    assert metrics["stopped_at_max_tokens"] == 1 and set(metrics["seconds"]) == {"start", "generate", "check"}


def test_sampling_follows_the_prompt_style():
    from evolab.backends import Sampling
    from evolab.evaluation.harness import sampling_for

    cfg = settings("eval", max_tokens=99, sampling={"temperature": 0.7, "top_p": 0.9, "seed": 5}, base_stop=["\ndef ", "\nclass "])
    assert sampling_for("base", cfg) == Sampling(max_tokens=99, temperature=0.7, top_p=0.9, seed=5, stop=("\ndef ", "\nclass "))
    for style in ("instruct", "tuned"):
        assert sampling_for(style, cfg) == Sampling(max_tokens=99, temperature=0.7, top_p=0.9, seed=5, until_code_block=True)


def test_a_static_failure_is_no_code_or_a_syntax_error(humaneval):
    from evolab.evaluation.harness import static_failure

    problem = select(humaneval.problems, None, ["HumanEval/2"])[0]
    assert static_failure(problem, "def truncate_number(number):\n    return number % 1.0\n") is None
    assert static_failure(problem, "def truncate_number(number):\n    return (\n") == "syntax_error"
    assert static_failure(problem, "def truncate(number):\n    return 0\n") == "no_code"


def test_evaluate_scores_plus_tests_apart_and_builds_each_styles_request(humaneval, tmp_path, monkeypatch):
    """A base-style answer is the completion of the prompt; a tuned answer to the training format's request; a plus
    benchmark reports its plus suite apart: the memorised answer passes the base tests and fails the plus ones."""
    import dataclasses

    from helpers import compose_params

    from evolab.evaluation.harness import evaluate

    problems = [Problem.of({**p.row(), "plus_input": p.more["base_input"] + [p.more["base_input"][0]]})
                for p in select(humaneval.problems, 2)]
    problems[0].more["plus_input"] = [[[1.0, 2.5, 3.9, 4.4], 0.45]]
    plus = dataclasses.replace(humaneval, name="humaneval+", plus=True, problems=problems)
    first, second = problems
    memorised = (f"    return {first.entry_point}_real(numbers, threshold) if [numbers, threshold] in {first.more['base_input']!r} "
                 f"else True\n\ndef {first.entry_point}_real(numbers, threshold):\n" + first.canonical_solution)
    backend = Scripted({first.entry_point: [(memorised, "stop")], second.entry_point: [(second.canonical_solution, "stop")]})
    params = resolve(compose_params(["eval.sampling.n=1", "eval.k=[1]", "eval.max_tokens=64"], tmp_path / "params.yaml"))
    clock = iter([100.0, 100.0, 101.26, 200.0, 203.04])  # no engine to start, generation took 1.26 s, checking 3.04 s
    monkeypatch.setattr("evolab.evaluation.harness.time.perf_counter", lambda: next(clock))
    metrics = evaluate(plus, problems, backend, "base", params.eval, params.train, tmp_path / "base")
    monkeypatch.undo()
    assert backend.asked[0][0] == first.prompt.strip() + "\n" and backend.asked[0][1].stop  # a completion, cut at the stops
    assert (metrics["humaneval"]["pass@1"], metrics["humaneval_plus"]["pass@1"]) == (1.0, 0.5)
    assert metrics["humaneval_plus"]["solved"] == 1 and metrics["seconds"] == {"start": 0.0, "generate": 1.3, "check": 3.0}
    assert (tmp_path / "base/checker").is_dir()

    chat = Scripted({p.entry_point: [(fenced(p.prompt + p.canonical_solution), "stop")] for p in problems})
    metrics = evaluate(plus, problems, chat, "tuned", params.eval, replace(params.train, template="chat"), tmp_path / "tuned")
    request, sampling = chat.asked[0]  # train.template auto: an instruct student was trained in its chat template
    assert request[0] == {"role": "system", "content": params.train.system_prompt} and first.prompt.strip() in request[-1]["content"]
    assert sampling.until_code_block and metrics["humaneval_plus"]["pass@1"] == 1.0


def test_pass_at_k_and_the_bootstrap_interval_on_known_outcomes():
    from evolab.evaluation.harness import bootstrap_ci, pass_at_k

    assert pass_at_k([], 1, 1) == 0.0 and pass_at_k([1, 0], 2, 1) == 0.25
    assert bootstrap_ci([]) == (0.0, 0.0)
    rates = [(i * 7 % 11) / 10 for i in range(37)]  # per-problem pass rates: the interval is pinned by seed and percentiles
    assert bootstrap_ci(rates) == pytest.approx((0.3945945945945946, 0.6054054054054053), abs=1e-12)
    # 10,000 resamples from seed 0, to the digit: another resample count moves it by about 1e-6 on continuous rates
    assert bootstrap_ci([(i ** 0.5) % 1 for i in range(37)]) == pytest.approx((0.33031355088959163, 0.5232419876907324), abs=1e-9)


def test_extraction_keeps_only_the_entry_point_and_what_it_needs(humaneval):
    problem = humaneval.problems[0]
    code = extract_code(problem, fenced(problem.prompt + problem.canonical_solution + "\ncrash = 1 / 0\n"))
    assert f"def {problem.entry_point}" in code and "crash" not in code  # a stray line that would raise is left out


def test_each_of_several_samples_of_a_task_keeps_its_own_verdict(humaneval, tmp_path):
    problems = select(humaneval.problems, None, ["HumanEval/2"])
    right = problems[0].prompt + problems[0].canonical_solution
    wrong = problems[0].prompt + "    return 0.5\n"
    solutions = [wrong, right, right, wrong]
    rows = score(humaneval, problems, [("HumanEval/2", s) for s in solutions], tmp_path,
                 CHECK["sandbox"], CHECK["memory_mb"])
    assert [r.passed for r in rows] == [False, True, True, False]
    assert {r.plus_status for r in rows} == {None}  # a base-only benchmark runs no plus tests


def test_each_sample_records_its_error_and_the_timings_are_rounded_to_a_tenth(humaneval, tmp_path, monkeypatch):
    from helpers import compose_params

    from evolab.evaluation.harness import evaluate

    problems = select(humaneval.problems, 1)
    backend = Scripted({problems[0].entry_point: [(fenced(problems[0].prompt + problems[0].canonical_solution), "stop")]})
    params = resolve(compose_params(["eval.sampling.n=1", "eval.k=[1]", "eval.max_tokens=64"], tmp_path / "params.yaml"))
    clock = iter([100.0, 102.54, 103.8, 200.0, 203.26])  # the engine's start 2.54 s, generation 1.26 s, checking 3.26 s
    monkeypatch.setattr("evolab.evaluation.harness.time.perf_counter", lambda: next(clock))
    metrics = evaluate(humaneval, problems, backend, "instruct", params.eval, params.train, tmp_path)
    assert metrics["seconds"] == {"start": 2.5, "generate": 1.3, "check": 3.3}
    sample = json.loads((tmp_path / "samples.jsonl").read_text().splitlines()[0])
    assert "error" in sample and sample["error"] is None


def test_the_configured_sandbox_is_the_one_that_runs(humaneval, tmp_path):
    """eval.sandbox=guard runs under evalplus's guard alone, where a folder outside the checker's can be made; auto
    adds the namespace lockdown here, where the file system is read-only (the difference shows which one ran)."""
    from helpers import compose_params

    from evolab.evaluation.harness import evaluate

    problem = select(humaneval.problems, 1)[0]
    marker = tmp_path / "marker"
    head, body = problem.prompt, problem.canonical_solution
    writes = head + f"    import os\n    os.makedirs({str(marker)!r}, exist_ok=True)\n" + body
    rows = score(humaneval, [problem], [(problem.task_id, writes)], tmp_path / "a", "guard", 2048)
    assert rows[0].passed and marker.exists()
    marker.rmdir()
    assert not score(humaneval, [problem], [(problem.task_id, writes)], tmp_path / "b", "auto", 2048)[0].passed
    backend = Scripted({problem.entry_point: [(fenced(writes), "stop")]})
    params = resolve(compose_params(["eval.sampling.n=1", "eval.k=[1]", "eval.max_tokens=64", "eval.sandbox=guard"], tmp_path / "params.yaml"))
    metrics = evaluate(humaneval, [problem], backend, "instruct", params.eval, params.train, tmp_path / "c")
    assert metrics["humaneval"]["pass@1"] == 1.0 and marker.exists()
