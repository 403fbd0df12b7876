"""Similarity of training instructions to HumanEval, with the real offline MiniLM and the real problems."""
from __future__ import annotations

import json

from helpers import ROOT, item

from evolab.curation.similarity import similarity_by_round, tfidf_to_test
from evolab.evaluation.suites import load_benchmark

SEEDS = ROOT / "evolab/data/seeds.jsonl"


def test_a_planted_benchmark_prompt_is_found_and_ordinary_data_stays_far():
    prompts = {p.task_id: p.prompt for p in load_benchmark("humaneval").problems}
    seeds = [item(**json.loads(line)) for line in SEEDS.read_text().splitlines()]
    planted = item(id="leak", round=1, instruction="Complete this function.\n" + prompts["HumanEval/12"])
    honest = item(id="evolved", round=1, instruction="Write a program that schedules meetings in rooms so that "
                  "no two meetings overlap, using at most O(n log n) time.")
    problems = load_benchmark("humaneval").problems
    items = seeds + [planted, honest]
    tfidf = tfidf_to_test([r.instruction for r in items], [p.prompt + p.canonical_solution for p in problems])
    stats, rows = similarity_by_round(items, prompts, "all-MiniLM-L6-v2", tfidf)

    by_id = {r.id: r for r in rows}
    assert by_id["leak"].nearest_task == "HumanEval/12" and by_id["leak"].similarity > 0.9
    assert by_id["evolved"].similarity < 0.6
    assert stats["r1"]["items"] == 2 and stats["r0"]["items"] == len(seeds)
    assert stats["r1"]["item_to_test"]["max"] == by_id["leak"].similarity
    assert stats["r0"]["item_to_test"]["max"] < by_id["leak"].similarity
    # Per HumanEval problem, its nearest item of round 1: one problem (the leaked one) is very close.
    assert stats["r1"]["test_to_item"]["max"] > 0.9 > stats["r1"]["test_to_item"]["median"]
    # TF-IDF (Magicoder's measure): the copied prompt shares HumanEval/12's rare words; the honest item does not.
    assert by_id["leak"].tfidf > 0.5 and by_id["evolved"].tfidf < 0.2
    assert stats["all"]["items"] == len(items) and stats["all"]["item_to_test_tfidf"]["max"] == by_id["leak"].tfidf
