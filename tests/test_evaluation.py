"""HumanEval through evalplus, offline, on the code path the pipeline uses."""
import pytest

from evolab.evaluation import extract_code, humaneval_problems, pass_at_1, score


@pytest.fixture(scope="module")
def problems():
    return humaneval_problems()


def test_offline_humaneval_has_all_problems_with_recorded_base_inputs(problems):
    assert len(problems) == 164
    assert all(p["base_input"] for p in problems)
    assert all(p["plus_input"] == [] for p in problems)  # base tests only: never reported as HumanEval+


def test_canonical_solutions_score_164_of_164_including_find_zero(problems, tmp_path):
    results = score(problems, {p["task_id"]: p["prompt"] + p["canonical_solution"] for p in problems}, tmp_path)
    failed = [t for t, r in results.items() if not r["passed"]]
    assert failed == [] and pass_at_1(results) == 1.0
    assert results["HumanEval/32"]["passed"]


def test_wrong_solutions_score_zero(problems, tmp_path):
    wrong = {p["task_id"]: p["prompt"] + "    return None\n" for p in problems}
    results = score(problems, wrong, tmp_path)
    assert pass_at_1(results) == 0.0


def test_a_wrong_root_for_find_zero_fails(problems, tmp_path):
    find_zero = next(p for p in problems if p["task_id"] == "HumanEval/32")
    results = score([find_zero], {"HumanEval/32": find_zero["prompt"] + "    return 12345.0\n"}, tmp_path)
    assert not results["HumanEval/32"]["passed"]


def test_extraction_survives_fences_prose_and_repeats(problems):
    problem = problems[0]
    body = problem["canonical_solution"]
    response = (
        "Sure! Here is the solution:\n```python\n" + problem["prompt"] + body + "```\n"
        "And again, for clarity:\n```python\n" + problem["prompt"] + body + "\nprint(has_close_elements([1.0], 0.5))\n```\n"
    )
    code = extract_code(problem, response)
    assert code.count(f"def {problem['entry_point']}") == 1 and "print(" not in code and "Sure" not in code
    only_body = extract_code(problem, body)
    assert f"def {problem['entry_point']}" in only_body


def test_bootstrap_interval_brackets_pass_at_1_and_narrows_with_more_problems():
    from evolab.evaluation import bootstrap_ci

    low, high = bootstrap_ci([True, False] * 10)
    assert low < 0.5 < high
    wide = high - low
    low, high = bootstrap_ci([True, False] * 80)
    assert low < 0.5 < high and high - low < wide
    assert bootstrap_ci([True] * 5) == (1.0, 1.0)
