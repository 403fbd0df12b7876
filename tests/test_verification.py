"""Execution verification through the real sandbox: a wrong answer is dropped with its reason and a right one kept,
a failed answer is asked again up to `attempts`, the teacher's tests are used where the task has none, and the
verify stage writes what it kept, what it dropped and the pass shares per round and per method."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers import item, read_jsonl, run_stage, scratch_params, scripted, settings

from evolab.backends import Backend, Completion, Sampling, make_backend
from evolab.core.records import Item, write_rows
from evolab.core.records import read_jsonl as read_pool
from evolab.evaluation.task_suite import FOLDER
from evolab.evaluation.verification import Check, attempt_seed, check_function, parse_asserts, verification_stats, verify
from evolab.testing.teacher import CONSTRAINTS, answers_right

POOL = read_pool(FOLDER / "train.jsonl")
CFG = settings("verify", mode="tests", attempts=1, sampling={"temperature": 0.8, "top_p": 0.95}, timeout=5, memory_mb=2048,
               sandbox="auto", tests_max_tokens=128, tests_prompt="Write assert statements for `{name}` ({signature}): {task}")
ANSWER = Sampling(max_tokens=512, temperature=0.8)


def task_item(task: dict, output: str, round_k: int = 0) -> Item:
    return item(id=task["id"], round=round_k, instruction=task["instruction"], output=output, tests=task["tests"],
                entry_point=task["entry_point"])


def verified(items: list[Item], *args, **kwargs) -> list[dict]:
    """verify's result as results/verification.jsonl holds it, a row per item."""
    return [c.result().row() for c in verify(items, *args, **kwargs)]


def header(task: dict) -> str:
    """A pool task's prompt: its signature and docstring, without the reference body."""
    return task["reference"].split('    """\n')[0] + '    """\n'


def fenced(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\nIt does the steps in order."


@pytest.fixture(scope="module")
def teacher(scripted_teacher):
    return make_backend({"backend": "openai", "base_url": scripted_teacher.base_url, "model": "scripted", "concurrency": 4})


def test_a_right_answer_is_kept_and_a_wrong_one_dropped_with_its_reason():
    right, wrong, loops = POOL[0], POOL[1], POOL[2]
    records = [task_item(right, fenced(right["reference"])),
               task_item(wrong, fenced(wrong["reference"].replace("    return", "    return None  #", 1))),
               task_item(loops, fenced(header(loops) + "    while True:\n        pass\n"))]
    out = verified(records, CFG, None, None, ANSWER, seed=0)
    assert [(r["kept"], r["verdict"], r["reason"]) for r in out] == [
        (True, "pass", "kept"), (False, "fail", "verify_fail"), (False, "timeout", "verify_timeout")]
    assert all(r["tests"] == task["tests"] and r["tests_source"] == "task" for r, task in zip(out, (right, wrong, loops)))
    assert out[1]["output"] == out[1]["first_output"] == records[1].output  # a dropped item keeps what it had


def test_a_failed_answer_is_asked_again_and_the_first_that_passes_is_kept(teacher):
    """The scripted teacher answers a suite task right or wrong by the request's seed (evolab/testing/teacher.py,
    answers_right): with 4 attempts an item ends at its first right answer, which the test predicts."""
    tasks = POOL[:12]
    records = [task_item(t, fenced(header(t) + "    return None\n")) for t in tasks]
    out = verified(records, replace(CFG, attempts=4), teacher, None, ANSWER, seed=7)
    for r, t, before in zip(out, tasks, records):
        rights = [answers_right(header(t), attempt_seed(7, t["id"], attempt)) for attempt in (2, 3, 4)]
        expected = ["fail"] + (["fail"] * rights.index(True) + ["pass"] if True in rights else ["fail"] * 3)
        assert [a.split(":")[0] for a in r["attempts"]] == expected
        assert r["kept"] == (True in rights) and r["teacher_calls"] == len(expected) - 1 and r["first_output"] == before.output
        if r["kept"]:
            assert t["reference"].split('    """\n', 1)[1] in r["output"]
    assert sum(len(r["attempts"]) > 2 for r in out) > 0  # a retry that failed again is asked a third time


def test_the_teacher_writes_the_tests_of_a_task_that_has_none_and_a_prose_answer_has_no_code(teacher):
    solution = fenced("def solution(value):\n    return value\n")
    records = [item(id="a", round=1, instruction="Write a function that returns its input.", output=solution),
               item(id="b", round=1, instruction=f"Write a function that returns its input. {CONSTRAINTS[0]}", output=solution),
               item(id="c", round=2, part="oss_instruct", instruction="Explain lists.", output="A list holds items in order.")]
    checks = verify(records, CFG, teacher, None, ANSWER, seed=0)
    out = [c.result().row() for c in checks]
    assert [(r["verdict"], r["tests_source"]) for r in out] == [("pass", "teacher"), ("fail", "teacher"), ("no_code", "")]
    assert out[0]["tests"] == ["assert solution(1) == 1", "assert solution('ab') == 'ab'"]
    assert out[1]["tests"][-1] == "assert solution(-1) is None"
    stats = verification_stats(checks)
    assert stats["by_round"]["r1"] == {"items": 2, "passed": 1, "pass_share": 0.5, "teacher_calls": 4, "calls_per_kept": 4.0,
                                       "first_attempt_passed": 1}
    assert stats["by_part"]["oss_instruct"]["passed"] == 0 and stats["verdicts"] == {"pass": 1, "fail": 1, "no_code": 1}


def test_with_verification_off_every_item_is_kept_unverified():
    records = [task_item(POOL[0], "no code at all")]
    out = verified(records, replace(CFG, mode="off"), None, None, ANSWER, seed=0)
    assert [(r["kept"], r["verdict"]) for r in out] == [(True, "unverified")]


def test_asserts_are_read_from_the_teachers_code_block():
    text = "Sure:\n```python\nassert f(1) == 2\n# a comment\nassert f(0) == 0\nprint(f(3))\n```\nassert outside"
    assert parse_asserts(text) == ["assert f(1) == 2", "assert f(0) == 0"]
    assert parse_asserts("```python\nassert f(1) == 2\nassert f([10, 9,") == ["assert f(1) == 2"]  # cut at the token limit
    assert check_function(["assert f(1) == 2"]) == "def check(candidate):\n    assert f(1) == 2\n"


def test_the_verify_stage_keeps_what_passes_and_records_what_it_dropped(tmp_path, scripted_teacher):
    """stages.verify on a merged file: task items against their own tests, evolved items against the teacher's."""
    scratch_params(tmp_path, ["verify.mode=tests", "verify.attempts=2", *scripted(scripted_teacher.base_url)])
    tasks = POOL[20:26]
    merged = [replace(task_item(t, fenced(t["reference"]) if i % 2 else "no code"), id=f"{t['id']}@r0") for i, t in enumerate(tasks)]
    merged.append(item(id="seed-001@r1", round=1, instruction=f"Return the input. {CONSTRAINTS[0]}",
                       output=fenced("def solution(value):\n    return value\n")))
    write_rows(merged, tmp_path / "data/merged.jsonl")
    run_stage(tmp_path, "verify", env={"EVOLAB_CACHE": str(tmp_path / "cache")})
    kept = read_jsonl(tmp_path / "data/verified.jsonl")
    everything = read_jsonl(tmp_path / "results/verification.jsonl")
    assert [r["id"] for r in kept] == [f"{t['id']}@r0" for t in tasks[1::2]]
    assert {r["id"]: r["reason"] for r in everything if not r["kept"]} == {
        **{f"{t['id']}@r0": "verify_no_code" for t in tasks[::2]}, "seed-001@r1": "verify_fail"}
    stats = json.loads((tmp_path / "metrics/verify.json").read_text())
    assert (stats["by_round"]["r0"]["pass_share"], stats["by_round"]["r1"]["pass_share"]) == (0.5, 0.0)


def test_verification_stats_count_per_round_and_part():
    from evolab.evaluation.verification import verification_stats

    def row(round_k, part, calls, attempts, verdict, source):
        return Check(item(round=round_k, part=part), "", [], source, None, verdict=verdict, attempts=attempts,
                     teacher_calls=calls)

    records = [row(0, "code_evol", 0, ["pass"], "pass", "task"),
               row(1, "code_evol", 2, ["fail", "pass"], "pass", "teacher"),
               row(1, "code_evol", 3, ["fail", "fail"], "fail", "teacher"),
               row(1, "oss_instruct", 0, [], "no_tests", None)]
    stats = verification_stats(records)
    assert {k: stats[k] for k in ("items", "passed", "pass_share", "teacher_calls", "calls_per_kept", "first_attempt_passed")} == {
        "items": 4, "passed": 2, "pass_share": 0.5, "teacher_calls": 9, "calls_per_kept": 4.5, "first_attempt_passed": 1}
    assert stats["by_round"] == {
        "r0": {"items": 1, "passed": 1, "pass_share": 1.0, "teacher_calls": 1, "calls_per_kept": 1.0, "first_attempt_passed": 1},
        "r1": {"items": 3, "passed": 1, "pass_share": 0.3333, "teacher_calls": 8, "calls_per_kept": 8.0, "first_attempt_passed": 0}}
    assert stats["by_part"]["oss_instruct"] == {"items": 1, "passed": 0, "pass_share": 0.0, "teacher_calls": 1,
                                                "calls_per_kept": None, "first_attempt_passed": 0}
    assert stats["verdicts"] == {"pass": 2, "fail": 1, "no_tests": 1}
    assert stats["tests_source"] == {"task": 1, "teacher": 2, "none": 1}
    assert verification_stats([row(0, "code_evol", 0, [], "fail", None)])["calls_per_kept"] is None


class Recording(Backend):
    """An in-process teacher: asserts for a tests request, else the answer `answers[attempt seed]` (an exception is a
    failed call); every request is kept."""

    identity = {"backend": "recording"}

    def __init__(self, tests: str, answers: dict):
        super().__init__({"retries": 0})
        self.tests, self.answers, self.asked = tests, answers, []

    def _generate(self, request, sampling):
        self.asked.append((request, sampling))
        if "Write assert statements" in request[-1]["content"]:
            return Completion(self.tests, "stop")
        answer = self.answers[sampling.seed]
        if isinstance(answer, Exception):
            raise answer
        return Completion(answer, "stop")


ADD = item(id="add-1", round=1, instruction="Add two numbers.", input="a=1, b=2", entry_point="add")


def test_the_teachers_tests_and_each_retry_are_asked_exactly_as_configured_and_logged():
    wrong = fenced("def helper(x):\n    return x\n\ndef add(a, b):\n    return helper(a) - b\n")
    right = fenced("def add(a, b):\n    return a + b\n")
    seeds = [attempt_seed(3, "add-1", attempt) for attempt in (2, 3)]
    teacher = Recording('```python\nassert add(1, 2) == 3, "' + "x" * 300 + '"\n```', {seeds[0]: wrong, seeds[1]: right})
    logged: list[str] = []
    out = verified([replace(ADD, output=wrong)], replace(CFG, attempts=3), teacher, "SYS", ANSWER, seed=3, log=logged.append)
    (tests_request, tests_sampling), *retries = teacher.asked
    assert tests_request == [{"role": "user", "content": CFG.tests_prompt.format(
        name="add", signature="def add(a, b)", task="Add two numbers.\na=1, b=2")}]
    assert tests_sampling == Sampling(max_tokens=128, temperature=0.0, seed=attempt_seed(3, "add-1", 0))
    assert retries == [([{"role": "system", "content": "SYS"}, {"role": "user", "content": "Add two numbers.\na=1, b=2"}],
                        ANSWER.with_seed(seed)) for seed in seeds]
    assert logged == ["tests: 1/1", "attempt 2: 1/1", "attempt 3: 1/1"]
    r = out[0]
    assert r["attempts"][0] == "fail: " + r["attempts"][0][6:] and len(r["attempts"][0]) == 206 and "failed:" not in r["attempts"][0]
    assert r["attempts"][1:] == r["attempts"][:1] + ["pass"] and (r["verdict"], r["kept"], r["reason"]) == ("pass", True, "kept")
    assert r["signature"] == ["add", "a, b"] and r["teacher_calls"] == 3 and r["output"] == right.strip()


def test_items_without_tests_code_or_a_teacher_end_with_the_verdict_that_says_why():
    prose = replace(ADD, output="Add them.", more={**ADD.more, "tests": ["assert add(1, 2) == 3"]})
    code = replace(ADD, id="add-2", output=fenced("def add(a, b):\n    return a - b\n"))
    out = verified([prose, code], replace(CFG, attempts=2), None, None, ANSWER, seed=0)  # no teacher: no tests to write
    assert [(r["verdict"], r["reason"], r["attempts"]) for r in out] == [
        ("no_code", "verify_no_code", []), ("no_tests", "verify_no_tests", [])]
    seed = attempt_seed(0, "add-1", 2)
    failing = Recording("No asserts here.", {seed: TimeoutError("the teacher is down")})
    out = verified([replace(code, id="add-1")], replace(CFG, attempts=2), failing, None, ANSWER, seed=0)
    assert out[0]["verdict"] == "no_tests" and out[0]["tests_source"] == "teacher" and out[0]["tests"] == []
    tested = replace(code, id="add-1", more={**code.more, "tests": ["assert add(1, 2) == 3"]})
    out = verified([tested], replace(CFG, attempts=2), failing, None, ANSWER, seed=0)  # the retry fails as a call
    assert out[0]["attempts"][1] == "no_code" and out[0]["output"] == out[0]["first_output"] == code.output
    with pytest.raises(Exception, match=r"verify.mode must be one of \('off', 'tests'\), got 'all' \(conf/config.yaml, "
                                        r"-S verify.mode=tests\)"):
        verify([code], replace(CFG, mode="all"), None, None, ANSWER, seed=0)
    assert verified([code], replace(CFG, mode="off"), None, None, ANSWER, seed=0)[0]["reason"] == "kept"


def test_verification_stats_of_nothing_and_of_one_part():
    empty = verification_stats([])
    assert (empty["items"], empty["pass_share"], empty["calls_per_kept"], empty["by_part"]) == (0, 0.0, None, {})
    checks = [Check(item(), "", [], "task", None, verdict=verdict, attempts=["pass"], teacher_calls=calls)
              for verdict, calls in (("pass", 2), ("pass", 1), ("pass", 1), ("fail", 0))]
    stats = verification_stats(checks)
    assert list(stats["by_part"]) == ["code_evol"] and stats["calls_per_kept"] == 2.67  # 8 calls for 3 kept
    assert stats["by_part"]["code_evol"]["items"] == 4


def test_only_the_entry_point_and_what_it_needs_is_run_and_a_failure_without_a_teacher_is_final():
    """evalplus's sanitizer keeps the entry point and its dependencies: a stray top-level line that would raise is left
    out of the program run, for the first answer and for a retry alike."""
    stray = fenced("def add(a, b):\n    return a + b\n\ncrash = 1 / 0\n")
    tested = replace(ADD, more={**ADD.more, "tests": ["assert add(1, 2) == 3"]})
    assert verified([replace(tested, output=stray)], CFG, None, None, ANSWER, seed=0)[0]["verdict"] == "pass"
    wrong = fenced("def add(a, b):\n    return a - b\n")
    teacher = Recording("", {attempt_seed(0, "add-1", 2): stray})
    out = verified([replace(tested, output=wrong)], replace(CFG, attempts=2), teacher, None, ANSWER, seed=0)
    assert [a.split(":")[0] for a in out[0]["attempts"]] == ["fail", "pass"]
    alone = verified([replace(tested, output=wrong)], replace(CFG, attempts=3), None, None, ANSWER, seed=0)  # nobody to ask again
    assert [a.split(":")[0] for a in alone[0]["attempts"]] == ["fail"] and alone[0]["verdict"] == "fail"


def test_verification_runs_under_the_configured_sandbox(tmp_path):
    marker = tmp_path / "marker"
    writes = fenced(f"def add(a, b):\n    open({str(marker)!r}, 'w').close()\n    return a + b\n")
    tested = replace(ADD, output=writes, more={**ADD.more, "tests": ["assert add(1, 2) == 3"]})
    assert verified([tested], replace(CFG, sandbox="guard"), None, None, ANSWER, seed=0)[0]["verdict"] == "pass" and marker.exists()
