"""The pure parts of OSS-Instruct and WaveCoder: parsing, Magicoder's cleaning, WaveCoder's rules and example bank."""
from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from evolab.core.records import MethodRecord
from evolab.methods.oss_instruct import clean, parse_problem_solution
from evolab.methods.wavecoder import ExampleBank, parse_case, parse_verdict

ANSWER = """Here is a problem.

[Problem Description]
Write a function `chunks(xs, n)` that splits a list into lists of length n; the last may be shorter.

[Solution]
```python
def chunks(xs, n):
    return [xs[i:i + n] for i in range(0, len(xs), n)]
```"""


def test_problem_and_solution_are_split_at_the_markers_and_malformed_answers_are_refused():
    problem, solution = parse_problem_solution(ANSWER)
    assert problem.startswith("Write a function `chunks(xs, n)`") and "[Solution]" not in problem
    assert solution.startswith("```python\ndef chunks")
    assert parse_problem_solution(ANSWER.replace("[Solution]", "")) is None  # missing
    swapped = ANSWER.replace("[Problem Description]", "@@").replace("[Solution]", "[Problem Description]").replace("@@", "[Solution]")
    assert parse_problem_solution(swapped) is None  # misordered
    assert parse_problem_solution("[problem description]\n\n[SOLUTION]\nx = 1") is None  # empty problem
    # a small teacher's markdown headings count as the markers; a mere mention of "solution" does not
    assert parse_problem_solution("### Problem Description\nAdd two numbers.\n\n**Solution:**\nx + y") == ("Add two numbers.", "x + y")
    assert parse_problem_solution("### Problem Description\nFind a solution to this.\nThe solution is hard.") is None


def test_cleaning_drops_repeats_of_seed_problem_or_solution_and_says_which():
    def sample(id, seed, problem, solution):
        return MethodRecord(id, 0, "", "", "", True, "kept", more={"seed": seed, "problem": problem, "solution": solution})

    rows = [sample(f"s{i}", f"seed {i}", f"problem {i}", f"solution {i}") for i in range(6)]
    rows += [sample("same-seed", "seed  0", "new", "new"), sample("same-solution", "other", "other", "solution\n3")]
    kept, dropped = clean(rows, seed=666)
    assert {r.id for r in kept} | {d.id for d in dropped} == {r.id for r in rows}
    assert len(kept) == 6
    # the shuffle decides which of a pair comes first; the drop names the field and the sample it repeats
    assert {frozenset((d.id, d.repeats)) for d in dropped} == {frozenset(("same-seed", "s0")), frozenset(("same-solution", "s3"))}
    assert {d.field for d in dropped} == {"seed", "solution"}


CASE = """task_name: Code Repair
instruction: Fix the off-by-one error in the given Python function.
information: def last(xs):
    return xs[len(xs)]
solution: def last(xs):
    return xs[len(xs) - 1]"""


def test_generated_cases_pass_or_fail_the_released_rules():
    case, why = parse_case(CASE)
    assert why == "ok" and case.task_name == "Code Repair" and case.information.startswith("def last")
    assert parse_case(CASE.replace("task_name: Code Repair\n", ""))[1] == "task_name_count_0"
    assert parse_case(CASE + "\ninstruction: again")[1] == "instruction_count_2"
    long = "Fix it. Then test it. Then document it."
    assert parse_case(CASE.replace("Fix the off-by-one error in the given Python function.", long))[1] == "instruction_sentences"
    no_info, why = parse_case(CASE.split("information:")[0] + "solution: print(1)")
    assert why == "ok" and no_info.information == "<noinput>"


def test_the_discriminator_keeps_only_an_overall_yes():
    checklist = "- step 1: 1. Instruction: yes, Python is named.\n- step 2: 1. yes 2. no, prose outside code\n"
    keep, analysis = parse_verdict(checklist + "- Overall answer: yes\n- reasons: all met")
    assert keep and analysis.startswith("- step 1") and analysis.endswith("all met")
    assert parse_verdict(checklist + "- Overall answer: no\n- reasons: step 2.2")[0] is False
    assert parse_verdict(checklist)[0] is False  # no overall answer: rejected


def test_the_example_bank_samples_whole_cases_good_and_bad_with_the_analysis():
    bank = ExampleBank()
    case, _ = parse_case(CASE)
    bank.add(case, True, "fine")
    bank.add(replace(case, instruction="Fix it."), False, "the language is not named")
    bank.add(replace(case, instruction="Repair."), False, "vague")
    good, bad = bank.few_shot(1, random.Random(0), "Here are some good examples:", "Here are some bad examples.")
    assert good == "Here are some good examples:\ntask_name: Code Repair\n" + CASE.split("\n", 1)[1]
    assert bad.startswith("Here are some bad examples.\ntask_name: Code Repair\ninstruction: ")
    assert bad.count("<Analysis>:") == 1 and ("not named" in bad or "vague" in bad)
    assert ExampleBank().few_shot(1, random.Random(0), "good", "bad") == ("", "")


def test_a_new_method_is_its_module_and_its_config(project):
    """docs/extending.md's steps, done: a module with make_data and a conf/method file, nothing else, and the
    DAG gains generate@NAME, whose records merge takes (the teacher is never asked here)."""
    import json
    import subprocess
    import sys

    (project / "evolab/methods/echo.py").write_text('''"""A method for the test: one item per call, the instruction echoed back."""
from evolab.core.records import MethodRecord


def make_data(cfg, count, max_tokens, seed, backend, log):
    records = [MethodRecord(id=f"echo-{i}", round=0, instruction=f"Echo {i}.", input="", output=f"Echo {i}.",
                            kept=i % 2 == 0, reason="kept" if i % 2 == 0 else "odd") for i in range(count)]
    return records, {"echoed": count}
''')
    (project / "conf/method/echo.yaml").write_text("name: echo\nevolve: false\ngenerator: echo\ntrain_phases: null\n")
    subprocess.run([sys.executable, "-m", "evolab.core.config", "method=echo", "profile=smoke",
                    "teacher.system_prompt=Be terse."], cwd=project, check=True, capture_output=True)
    stages = subprocess.run([str(Path(sys.executable).parent / "dvc"), "stage", "list", "--name-only"], cwd=project,
                            capture_output=True, text=True, check=True).stdout.split()
    assert "generate@echo" in stages and not any(s.startswith("evolve@") for s in stages)
    generated = subprocess.run([sys.executable, "-m", "stages.generate", "echo"], cwd=project, check=True,
                               capture_output=True, text=True)
    assert "teacher.system_prompt applies to the seed, evolve and verify stages only" in generated.stdout
    subprocess.run([sys.executable, "-m", "stages.merge"], cwd=project, check=True, capture_output=True)
    assert json.loads((project / "metrics/generate/echo.json").read_text())["echoed"] == 4
    merged = [json.loads(line) for line in (project / "data/merged.jsonl").read_text().splitlines()]
    assert [r["id"] for r in merged] == ["echo-0@r0", "echo-2@r0"] and {r["part"] for r in merged} == {"echo"}
