"""evolab's task suite: the held-out split shares no composition with the training pool or the dev split, the
committed files are what the generator writes, and evalplus's checker scores every reference as correct."""
from __future__ import annotations

import random

from evolab.core.records import read_jsonl
from evolab.evaluation.harness import score
from evolab.evaluation.suites import load_benchmark
from evolab.evaluation.task_suite import FAMILIES, FOLDER, SUITE, build, compositions, fill, make_task, split_of, write_suite


def committed() -> dict[str, list[dict]]:
    return {split: read_jsonl(FOLDER / f"{split}.jsonl") for split in ("train", "dev", "test")}


def test_the_test_split_shares_no_composition_with_the_training_pool_or_the_dev_split():
    suite = committed()
    used = {split: {tuple(task["composition"]) for task in tasks} for split, tasks in suite.items()}
    assert len(suite["test"]) >= 200 and len(used["test"]) == len(suite["test"])  # each composition once
    assert not used["test"] & used["train"] and not used["test"] & used["dev"] and not used["dev"] & used["train"]
    # Each test task's reference is its composition's code, step by step, with its parameters.
    for task in suite["test"]:
        family, *steps, end = task["composition"]
        ops, ends = FAMILIES[family]
        code = [fill(ops[name].code, k) for name, k in zip(steps, task["parameters"])] + [ends[end].code]
        assert task["canonical_solution"] == "".join(f"    {line}\n" for step in code for line in step.splitlines())
    # and nothing of the test split's prompts appears in the training pool's instructions
    train_text = "\n".join(task["instruction"] for task in suite["train"])
    assert not [task["task_id"] for task in suite["test"] if task["prompt"].strip() in train_text]


def test_a_composition_always_falls_in_one_split_whatever_its_parameters():
    shares = SUITE["shares"]
    for composition in compositions("list", 2)[:200]:
        tasks = [make_task("t", composition, random.Random(seed), examples=1) for seed in range(3)]
        assert {split_of(tuple(t.more["composition"]), shares) for t in tasks} == {split_of(composition, shares)}


def test_the_committed_suite_is_what_the_generator_writes(tmp_path):
    write_suite(tmp_path)
    for split in ("train", "dev", "test"):
        assert (tmp_path / f"{split}.jsonl").read_text() == (FOLDER / f"{split}.jsonl").read_text(), (
            f"evolab/data/tasks/{split}.jsonl is stale: run `python -m evolab.evaluation.task_suite` and commit it")


def test_every_reference_passes_its_own_asserts():
    built = build(**{**SUITE, "sizes": {"train": 30, "dev": 30, "test": 30}})
    for task in built["dev"] + built["test"]:
        namespace: dict = {}
        exec(task.prompt + task.canonical_solution + task.more["test"], namespace)
        namespace["check"](namespace[task.entry_point])


def test_the_held_out_split_is_a_benchmark_scored_by_evalplus(tmp_path):
    benchmark = load_benchmark("evolab-tasks")
    problems = benchmark.problems[:20]
    right = [(p.task_id, p.prompt + p.canonical_solution) for p in problems]
    wrong = [(p.task_id, p.prompt + "    return None\n") for p in problems]
    rows = score(benchmark, problems, right + wrong, tmp_path, sandbox="auto", memory_mb=2048)
    assert [r.passed for r in rows] == [True] * 20 + [False] * 20
    assert len(load_benchmark("evolab-tasks-dev").problems) == SUITE["sizes"]["dev"]
