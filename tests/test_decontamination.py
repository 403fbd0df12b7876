"""Decontamination against the real HumanEval, with planted leaks, and MinHash deduplication."""
from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import ROOT, compose_params, item, run_stage, settings

from evolab.core.config import resolve
from evolab.core.records import Problem
from evolab.core.schema import Dedup, Ngram
from evolab.curation.decontamination import decontaminate, docstring
from evolab.curation.embeddings import embed
from evolab.evaluation.suites import human_eval_problems

CFG = settings("decontamination", substring={"min_chars": 30}, ngram={"n": 10, "threshold": 0.5, "min_grams": 10},
               embedding={"threshold": 0.9}, dedup={"num_perm": 128, "threshold": 0.8, "shingle": 5})

CLEAN = [
    item(id="clean-0", instruction="Write a function that returns the n-th Fibonacci number using memoization.",
         output="from functools import lru_cache\n\n@lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)"),
    item(id="clean-1", instruction="Parse an INI file into a dictionary of sections, each a dictionary of keys to values.",
         output="import configparser\n\ndef parse(path):\n    c = configparser.ConfigParser()\n    c.read(path)\n    return {s: dict(c[s]) for s in c.sections()}"),
    item(id="clean-2", instruction="Write a shell-style glob matcher supporting * and ? wildcards without the fnmatch module.",
         output="def match(p, s):\n    if not p:\n        return not s\n    if p[0] == '*':\n        return match(p[1:], s) or bool(s) and match(p, s[1:])\n    return bool(s) and p[0] in ('?', s[0]) and match(p[1:], s[1:])"),
]


@pytest.fixture(scope="module")
def humaneval():
    return human_eval_problems()


def planted(humaneval):
    he0, he10, he20, he30 = (humaneval[i] for i in (0, 10, 20, 30))
    return [
        # the prompt verbatim, as an instruction
        item(id="leak-prompt", instruction=f"Complete this function:\n{he0.prompt}", output="pass"),
        # the canonical solution inside an answer
        item(id="leak-solution", instruction="Make a palindrome.", output=he10.prompt.split('"""')[0] + he10.canonical_solution),
        # the docstring reworded a little: no substring survives, most 10-grams of the problem still do
        item(id="leak-reworded", instruction=docstring(he20.prompt).replace("numbers", "values"), output="..."),
        # the task restated in prose with its doctest's values: no substring, few shared 10-grams; the embedding check sees it
        item(id="leak-paraphrase", instruction="Write get_positive(l: list), which returns only positive numbers in the "
                                               "list, e.g. [2, 5, 6] for [-1, 2, -4, 5, 6].",
             output="def keep_positive(values):\n    return list(filter(lambda v: v > 0, values))"),
    ], he30


def test_planted_humaneval_items_are_removed_with_their_reason_and_clean_items_kept(humaneval):
    leaks, he30 = planted(humaneval)
    kept, removed = decontaminate(CLEAN + leaks, humaneval, CFG, embed=embed)
    assert [r.id for r in kept] == ["clean-0", "clean-1", "clean-2"]
    why = {r.id: (r.check, r.match) for r in removed}
    assert why["leak-prompt"] == ("substring", "HumanEval/0")
    assert why["leak-solution"] == ("substring", "HumanEval/10")
    assert why["leak-paraphrase"] == ("embedding", "HumanEval/30"), he30.prompt
    assert why["leak-reworded"] == ("ngram", "HumanEval/20")  # no verbatim docstring or solution: the n-grams alone


def test_a_benchmark_problem_hidden_in_an_items_input_is_found(humaneval):
    """An item whose instruction is innocent but whose input holds HumanEval/0's prompt (as a WaveCoder repair or
    translation task carries code in its input)."""
    hidden = item(id="in-input", instruction="Fix the bug in the code below.", input=humaneval[0].prompt, output="...")
    kept, removed = decontaminate(CLEAN + [hidden], humaneval, CFG)
    assert [r.id for r in kept] == ["clean-0", "clean-1", "clean-2"]
    assert [(r.id, r.check, r.match) for r in removed] == [("in-input", "substring", "HumanEval/0")]


def test_ngram_overlap_catches_a_copy_that_no_exact_substring_matches(humaneval):
    he20 = humaneval[20]
    words = (docstring(he20.prompt) + " " + he20.canonical_solution).split()
    mangled = " ".join(w.upper() if i % 7 == 0 else w for i, w in enumerate(words))  # case is ignored: still a substring
    rewrapped = "\n".join(" ~ ".join(words[i:i + 3]) for i in range(0, len(words), 3))  # separators between every 3 words
    _, removed = decontaminate([item(id="a", instruction=mangled, output=""),
                                item(id="b", instruction=rewrapped, output="")], humaneval, CFG)
    assert {(r.id, r.check) for r in removed} == {("a", "substring"), ("b", "ngram")}


def test_exact_and_near_duplicates_are_removed_keeping_the_first():
    base = CLEAN[0]
    near = replace(base, id="near", output=base.output + "\n# memoized")
    exact = replace(base, id="exact", instruction="  " + base.instruction.upper())
    kept, removed = decontaminate(CLEAN + [near, exact], [], CFG)
    assert [r.id for r in kept] == ["clean-0", "clean-1", "clean-2"]
    assert {(r.id, r.match) for r in removed} == {("near", "clean-0"), ("exact", "clean-0")}
    assert all(r.check == "duplicate" and r.score >= 0.8 for r in removed)


def test_the_decontaminate_stage_removes_a_planted_prompt_from_generated_data_and_reports_why(project, humaneval):
    """The stage every method runs before training, on the project's configuration: a HumanEval prompt
    planted in an OSS-Instruct item and a verbatim repeat go; the reasons land in results/."""
    import json

    from evolab.core.records import read_jsonl, write_rows

    items = [replace(r, part="oss_instruct") for r in CLEAN]
    items.append(item(id="oss-planted", part="oss_instruct", output="def f(): ...",
                      instruction=f"Write a solution to the following coding problem:\n{humaneval[2].prompt}"))
    items.append(replace(items[0], id="oss-repeat"))
    write_rows(items, project / "data/verified.jsonl")  # verify's output (every merged item, with verify.mode: off)
    run_stage(project, "decontaminate")
    assert [r["id"] for r in read_jsonl(project / "data/train.jsonl")] == ["clean-0", "clean-1", "clean-2"]
    removed = {r["id"]: r for r in read_jsonl(project / "results/decontamination.jsonl")}
    assert (removed["oss-planted"]["check"], removed["oss-planted"]["match"]) == ("substring", "HumanEval/2")
    assert removed["oss-planted"]["instruction"].startswith("Write a solution") and removed["oss-planted"]["part"] == "oss_instruct"
    assert (removed["oss-repeat"]["check"], removed["oss-repeat"]["match"]) == ("duplicate", "clean-0")
    stats = json.loads((project / "metrics/decontamination.json").read_text())
    assert stats["removed_by_check"] == {"substring": 1, "duplicate": 1} and stats["kept"] == 3
    assert stats["problems"] == 164 + 24  # HumanEval and the dev set


def test_the_shipped_seed_instructions_are_many_distinct_and_clean(tmp_path):
    """At least 200 seed instructions written for evolab; every check of the decontaminate stage (HumanEval
    and the dev set: substring, n-grams, embeddings; near duplicates among themselves) keeps all of them."""
    from evolab.core.records import read_jsonl
    from stages.decontaminate import clean_data

    records = read_jsonl(ROOT / "evolab/data/seeds.jsonl")
    assert len(records) >= 200 and len({r["id"] for r in records}) == len(records)
    cfg = resolve(compose_params([], tmp_path / "params.yaml")).decontamination
    kept, removed, _ = clean_data([item(**{**r, "output": r["output"] or ""}) for r in records], cfg)
    assert removed == [] and len(kept) == len(records)


def test_each_check_flags_at_its_threshold_and_records_its_score():
    import numpy as np

    from evolab.curation.decontamination import benchmark_strings, contamination, ngrams

    assert ngrams("A b C d", 2) == {("a", "b"), ("b", "c"), ("c", "d")} and ngrams("a b", 3) == set()
    assert docstring('"""Write a function that adds."""') == "Write a function that adds."  # MBPP: no function
    problem = Problem("T/0", '"""' + "w" * 30 + '"""', "f", canonical_solution=None)
    assert benchmark_strings([problem], 30) == [("T/0", "w" * 30)] and benchmark_strings([problem], 31) == []
    assert benchmark_strings([replace(problem, prompt='"""ab"""')], 2) == [("T/0", "ab")]  # no solution: nothing else
    cfg = settings("decontamination", substring={"min_chars": 30}, ngram={"n": 2, "threshold": 0.5, "min_grams": 4},
                   embedding={"threshold": 0.5})
    words = Problem("W/0", "alpha beta gamma delta epsilon", "f", canonical_solution="zeta eta theta iota kappa")
    items = [item(id="half", instruction="alpha beta gamma", output="unrelated"),  # 2 of the prompt's 4 bigrams
             item(id="solution", instruction="zeta eta theta iota", output=""),  # 3 of the solution's 4
             item(id="copy", instruction="x", output="w" * 30),
             item(id="clean", instruction="nothing shared here", output="")]
    found = {r.id: r.as_record() for r in contamination(items, [problem, words], cfg)}
    assert found == {"half": {"id": "half", "check": "ngram", "match": "W/0", "score": 0.5},
                     "solution": {"id": "solution", "check": "ngram", "match": "W/0", "score": 0.75},
                     "copy": {"id": "copy", "check": "substring", "match": "T/0", "score": 1.0}}
    assert contamination(items[:1], [words], replace(cfg, ngram=replace(cfg.ngram, min_grams=5))) == []  # too few bigrams
    lone = Problem("L/0", "yyyy", "f", canonical_solution=None)  # no solution: nothing of it to find
    assert contamination([item(id="x", instruction="xxxx")], [lone], replace(cfg, ngram=Ngram(n=1, threshold=1.0, min_grams=1))
                         ) == []
    assert docstring('"""Return X"""') == "Return X"

    def embed(texts):  # the item "half" at similarity exactly 0.5 to the problem, "clean" at 0.25
        return np.array([{"alpha beta gamma": [0.5, 0.5], "nothing shared here": [0.25, 0.75]}.get(t, [1.0, 0.0]) for t in texts])

    loose = replace(cfg, ngram=replace(cfg.ngram, threshold=1.0))
    by_embedding = contamination([items[0], items[3]], [words], loose, embed)
    assert [(r.id, r.check, r.match) for r in by_embedding] == [("half", "embedding", "W/0")]
    assert by_embedding[0].score == 0.5


def test_duplicates_use_the_configured_sketch_and_threshold_and_every_later_copy_goes():
    from evolab.curation.decontamination import duplicates

    text = "one two three four five six seven eight nine ten"
    records = [item(id="a", instruction=text), item(id="a2", instruction=text.upper()), item(id="a3", instruction=text),
               item(id="b", instruction=text.replace("ten", "eleven")), item(id="c", instruction="one two three four five zz")]
    cfg = Dedup(num_perm=64, threshold=0.6, shingle=5)
    removed = {r.id: r for r in duplicates(records, cfg)}
    assert (removed["a2"].score, removed["a3"].score, removed["a2"].match) == (1.0, 1.0, "a")
    assert removed["b"].match == "a" and removed["b"].score == pytest.approx(5 / 7, abs=0.1)  # 5 of 7 shingles shared
    assert "c" not in removed  # 1 of 7 shingles: its first five words only
    assert "b" not in {r.id for r in duplicates(records, replace(cfg, threshold=0.85))}


def test_a_text_shorter_than_a_shingle_is_one_shingle():
    from evolab.curation.decontamination import duplicates

    records = [item(id="a", instruction="a b c"), item(id="x", instruction="x b c")]  # no 5-word shingle in common
    assert duplicates(records, Dedup(num_perm=128, threshold=0.2, shingle=5)) == []


def test_the_docstring_is_the_last_functions():
    prompt = 'from typing import List\n\n\ndef helper(x):\n    """Not this one."""\n\n\ndef f(x: List[int]) -> int:\n    """Sum the list.\n    >>> f([1, 2])\n    3\n    """\n'
    assert docstring(prompt) == "Sum the list.\n>>> f([1, 2])\n3"
    assert docstring("def broken(:\n") == "def broken(:"  # not Python: the text itself
