"""The core logic a wrong line would silently break: the response cache's key, the prompt of a record with an
input, the template `auto` chooses, merging, writing an empty file, one heuristic per item, a failed plus
test, the token-matched control. Each test pins the behaviour (the issue's mutations: reports/mutation.md)."""
from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from helpers import ROOT, item, settings

from evolab.backends.base import Backend, Completion, Sampling
from evolab.core.cache import ResponseCache
from evolab.core.errors import ConfigError, StageError
from evolab.core.prompts import eval_request, instruction_prompt, sft_example, template_kind
from evolab.core.records import Item, MethodRecord, Problem, merge_records, read_items, read_jsonl, write_jsonl, write_rows
from evolab.curation.controls import cut_to_tokens, grow_to_tokens
from evolab.evaluation import harness

TRAIN = settings("train", template="auto", system_prompt="Be brief.",
                 alpaca={"no_input": "### Instruction:\n{instruction}\n\n### Response:\n",
                         "with_input": "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"})


class Counting(Backend):
    """A backend that answers with the number of calls made so far."""

    calls = 0

    @property
    def identity(self):
        return {"backend": "counting", "model": self.config.model}

    def _generate(self, request, sampling):
        Counting.calls += 1
        return Completion(f"answer {Counting.calls}", "stop", 1)


@pytest.mark.parametrize("change", ["fingerprint", "temperature", "top_p", "seed", "max_tokens", "stop", "model", "request"])
def test_the_response_cache_answers_again_only_what_was_asked_the_same_way(tmp_path, change):
    """A retrained adapter (another fingerprint), other sampling or another model must not reuse an answer."""
    cache = ResponseCache(tmp_path / "responses.sqlite")
    request, sampling = [{"role": "user", "content": "hi"}], Sampling(max_tokens=8, temperature=0.5, top_p=0.9, seed=1)
    first = Counting({"model": "m", "fingerprint": "adapter-1"}, cache).generate(request, sampling)
    same = Counting({"model": "m", "fingerprint": "adapter-1"}, cache)
    assert same.generate(request, sampling).text == first.text and same.cached_calls == 1
    config = {"model": "other" if change == "model" else "m", "fingerprint": "adapter-2" if change == "fingerprint" else "adapter-1"}
    other_sampling = {"temperature": Sampling(8, 0.6, 0.9, 1), "top_p": Sampling(8, 0.5, 1.0, 1), "seed": Sampling(8, 0.5, 0.9, 2),
                      "max_tokens": Sampling(9, 0.5, 0.9, 1), "stop": Sampling(8, 0.5, 0.9, 1, ("\n",))}.get(change, sampling)
    other_request = [{"role": "user", "content": "hello"}] if change == "request" else request
    again = Counting(config, cache)
    assert again.generate(other_request, other_sampling).text != first.text and again.live_calls == 1


def test_the_ledger_counts_every_answer_and_the_budget_stops_before_the_next_live_call(tmp_path):
    """Cached answers cost the data their tokens but this run nothing; once the live tokens reach the budget, the
    next live call raises, and what was answered stays cached."""
    from evolab.core.errors import BudgetReached

    class Priced(Counting):
        def _generate(self, request, sampling):
            return Completion("answer", "stop", 3, prompt_tokens=7)

    cache = ResponseCache(tmp_path / "responses.sqlite")
    ask = lambda i: ([{"role": "user", "content": f"q{i}"}], Sampling(max_tokens=8))  # noqa: E731
    first = Priced({"model": "m"}, cache)
    first.generate(*ask(0))
    assert first.ledger() == {"calls": 1, "prompt_tokens": 7, "completion_tokens": 3, "live_calls": 1, "cached_calls": 0,
                              "live_tokens": 10}
    capped = Priced({"model": "m", "budget_tokens": 20}, cache)
    capped.generate(*ask(0))  # cached: free
    capped.generate(*ask(1))
    capped.generate(*ask(2))  # 20 live tokens spent after it
    with pytest.raises(BudgetReached, match="budget of 20 live tokens is spent"):
        capped.generate(*ask(3))
    assert capped.ledger() == {"calls": 3, "prompt_tokens": 21, "completion_tokens": 9, "live_calls": 2, "cached_calls": 1,
                               "live_tokens": 20}
    assert len(cache) == 3


def test_a_call_log_answers_before_the_shared_cache_and_keeps_exactly_what_the_stage_used(tmp_path, monkeypatch):
    """A stage's call log (calls/STAGE.jsonl): its previous version, from DVC's cache as dvc.lock names it, answers
    first; saved, it holds the answers this run used, in key order, whether they came from it, the cache or the model."""
    import hashlib
    import subprocess
    import sys

    from evolab.core.cache import CallLog

    monkeypatch.chdir(tmp_path)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], check=True)
    previous = '{"key": "a", "value": {"text": "from the log", "finish_reason": "stop"}}\n'
    md5 = hashlib.md5(previous.encode()).hexdigest()
    (tmp_path / ".dvc/cache/files/md5" / md5[:2]).mkdir(parents=True)
    (tmp_path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).write_text(previous)
    (tmp_path / "dvc.lock").write_text(f"schema: '2.0'\nstages:\n  seed:\n    cmd: x\n    outs:\n    - path: calls/seed.jsonl\n"
                                       f"      hash: md5\n      md5: {md5}\n")
    shared = ResponseCache(tmp_path / "responses.sqlite")
    shared.put("a", {"text": "from the cache", "finish_reason": "stop"})
    shared.put("b", {"text": "cached", "finish_reason": "stop"})
    shared.put("unused", {"text": "not asked", "finish_reason": "stop"})
    log = CallLog(shared, "seed", "calls/seed.jsonl")
    assert log.get("a")["text"] == "from the log" and log.get("b")["text"] == "cached" and log.get("c") is None
    log.put("c", {"text": "new", "finish_reason": "stop"})
    log.save()
    saved = [json.loads(line) for line in (tmp_path / "calls/seed.jsonl").read_text().splitlines()]
    assert [(row["key"], row["value"]["text"]) for row in saved] == [("a", "from the log"), ("b", "cached"), ("c", "new")]
    assert shared.get("c")["text"] == "new"
    assert CallLog(shared, "evolve@r1", "calls/evolve_r1.jsonl").logged == {}  # a stage the lock does not hold


def test_a_records_input_reaches_every_prompt_format():
    chat = instruction_prompt("chat", TRAIN, "Sum the list.", "[1, 2]")
    assert chat == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sum the list.\n\n[1, 2]"}]
    assert instruction_prompt("wizardcoder", TRAIN, "Sum the list.", "[1, 2]") == (
        "### Instruction:\nSum the list.\n\n### Input:\n[1, 2]\n\n### Response:\n")
    example = sft_example("chat", TRAIN, item(instruction="Sum the list.", input="[1, 2]", output=" 3 \n"))
    assert example == {"prompt": chat, "completion": [{"role": "assistant", "content": "3"}]}
    assert instruction_prompt("chat", TRAIN, "Sum.", "  ")[-1]["content"] == "Sum."


def test_auto_trains_an_instruct_student_in_its_chat_template_and_a_base_one_in_alpaca():
    assert template_kind("auto", "instruct") == "chat" and template_kind("auto", "base") == "wizardcoder"
    assert template_kind("wizardcoder", "instruct") == "wizardcoder"
    problem = Problem("T/0", "def f():\n    pass\n", "f")
    eval_cfg = settings("eval", system_prompt="S", chat_instruction="Solve:\n{prompt}", tuned_instruction="Create:\n{prompt}")
    wizardcoder, chat = replace(TRAIN, template="wizardcoder"), replace(TRAIN, template="chat")
    assert eval_request(problem, "tuned", eval_cfg, wizardcoder) == "### Instruction:\nCreate:\ndef f():\n    pass\n\n### Response:\n"
    assert eval_request(problem, "tuned", eval_cfg, chat)[-1]["content"] == "Solve:\ndef f():\n    pass"
    assert eval_request(problem, "base", eval_cfg, TRAIN) == "def f():\n    pass\n"
    with pytest.raises(StageError, match="resolve"):  # `auto` is decided once, when the parameters are loaded
        eval_request(problem, "tuned", eval_cfg, TRAIN)


def test_merge_keeps_the_kept_items_with_an_answer_and_what_verification_needs():
    records = [{"id": "a", "round": 0, "instruction": "x", "output": "y", "kept": True, "tests": ["assert 1"], "entry_point": "f"},
               {"id": "a", "round": 1, "instruction": "x2", "output": "y2", "kept": True, "part": "oss_instruct", "input": "i",
                "teacher_tokens": {"calls": 1, "prompt_tokens": 9, "completion_tokens": 4}},
               {"id": "b", "round": 1, "instruction": "x3", "output": "  \n", "kept": True},
               {"id": "c", "round": 1, "instruction": "x4", "output": "y4", "kept": False}]
    merged, stats = merge_records([MethodRecord.of({"input": "", "reason": "kept", **r}) for r in records])
    assert [m.row() for m in merged] == [
        {"id": "a@r0", "round": 0, "part": "code_evol", "instruction": "x", "input": "", "output": "y", "tests": ["assert 1"],
         "entry_point": "f"},
        {"id": "a@r1", "round": 1, "part": "oss_instruct", "instruction": "x2", "input": "i", "output": "y2",
         "teacher_tokens": {"calls": 1, "prompt_tokens": 9, "completion_tokens": 4}}]
    assert stats == {"merged_items": 2, "items_per_round": {"r0": 1, "r1": 1}, "items_per_part": {"code_evol": 1, "oss_instruct": 1}}


def test_a_row_read_by_name_is_written_back_as_it_was(tmp_path):
    """Item and Problem name the fields evolab reads; every other field, and the order of all, survive a round trip."""
    rows = [{"id": "a@r1", "round": 1, "part": "code_evol", "instruction": "x", "input": "", "output": "y",
             "tests": ["assert f()"], "first_output": "z", "kept": True}]
    write_rows([Item.of(r) for r in rows], tmp_path / "items.jsonl")
    assert (tmp_path / "items.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    assert read_items(tmp_path / "items.jsonl")[0].more == {"tests": ["assert f()"], "first_output": "z", "kept": True}
    problem = {"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f", "canonical_solution": "    pass\n",
               "base_input": [[1]], "plus_input": [], "atol": 0}
    assert list(Problem.of(problem).row().items()) == list(problem.items())
    assert Problem.of({"task_id": "T/1", "prompt": "p", "entry_point": "g"}).canonical_solution == ""
    (tmp_path / "partial.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps({"id": "b", "instruction": "x"}) + "\n")
    with pytest.raises(ConfigError, match=r"partial.jsonl, line 3: Item rows need id, round, part, instruction, input, output; "
                                          r"this one lacks round, part, input, output\. Write the file with the stage"):
        read_items(tmp_path / "partial.jsonl")


def test_writing_no_records_empties_the_file(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl([{"id": "old"}], path)
    write_jsonl([], path)
    assert path.read_text() == "" and read_jsonl(path) == []


def test_each_item_of_a_round_draws_its_own_heuristic():
    from evolab.methods.code_evol import Parent, evolve_items, item_seed

    class Echo(Backend):
        identity = {"backend": "echo"}

        def _generate(self, request, sampling):
            return Completion("Write a function that sorts a list of numbers.", "stop", 8)

    method = settings("method", template="{method}\n{question}", heuristics={name: name for name in "abcde"}, judge=None,
                      elimination={"leak_phrases": [], "refusal_words": [], "refusal_max_words": 0})
    pool = [Parent(f"seed-{i:03d}", f"Task {i}.") for i in range(12)]
    evolutions = evolve_items(pool, 2, method, Echo({}), None, Sampling(8), Sampling(8), seed=42)
    expected = [random.Random(item_seed(42, 2, parent.id)).choice("abcde") for parent in pool]
    assert [e.heuristic for e in evolutions] == expected and len(set(expected)) > 2


def test_a_failed_plus_test_is_a_failure_whatever_the_base_tests_say(monkeypatch, tmp_path):
    result = {"eval": {"T/0": [{"base_status": "pass", "plus_status": "fail"}], "T/1": [{"base_status": "pass", "plus_status": "pass"}],
                       "T/2": [{"base_status": "fail", "plus_status": "pass"}]}}
    monkeypatch.setattr(harness, "check_solutions", lambda *args, **kwargs: result)
    benchmark = harness.Benchmark("humaneval+", "humaneval", True, [], "")
    problems = [Problem(f"T/{i}", "", "f") for i in range(3)]
    rows = harness.score(benchmark, problems, [(f"T/{i}", "def f(): pass") for i in range(3)], tmp_path,
                         "guard", 512)
    assert [r.passed for r in rows] == [False, True, False]
    assert [harness.failure_kind(None, r) for r in rows] == ["plus_wrong_or_error", "pass", "wrong_or_error"]
    assert harness.failure_kind("no_code", rows[1]) == "no_code"
    assert harness.failure_kind(None, harness.Verdict("timeout", None, False)) == "timeout"
    assert harness.failure_kind(None, harness.Verdict("pass", "timeout", False)) == "plus_timeout"


def test_the_token_matched_control_skips_an_item_that_overflows_and_takes_later_ones():
    records = [item(id="a", output="x" * 4), item(id="big", output="x" * 10), item(id="b", output="xxx"), item(id="c", output="xxx")]
    assert [r.id for r in cut_to_tokens(records, 10, lambda r: len(r.output))] == ["a", "b", "c"]
    assert [r.id for r in cut_to_tokens(records, 4, lambda r: len(r.output))] == ["a"]
    grown = grow_to_tokens([item(id="s", output="xxx"), item(id="t", output="xx")], 11, lambda r: len(r.output))
    assert [r.id for r in grown] == ["s#0", "t#0", "s#1", "t#1"]  # 10 tokens: the next (3) would pass 11


def test_a_stream_stops_once_its_code_block_closes_or_the_model_stops():
    from evolab.backends.base import until_code_block

    def stream(*chunks):
        return iter([{"choices": [{"text": text, "finish_reason": reason}]} for text, reason in chunks])

    chunks = stream(("Here:\n```py", None), ("\nx = 1\n", None), ("``` and", None), ("more", None))
    done = until_code_block(chunks, lambda choice: choice["text"])
    assert (done.text, done.finish_reason, done.completion_tokens) == ("Here:\n```py\nx = 1\n``` and", "stop", 3)
    assert next(chunks)["choices"][0]["text"] == "more"  # the rest is never asked for
    done = until_code_block(stream(("a", None), ("```b```", "length")), lambda choice: choice["text"])
    assert (done.text, done.finish_reason, done.completion_tokens) == ("a```b```", "length", 2)
    done = until_code_block(stream(("```x", None)), lambda choice: choice["text"])
    assert (done.text, done.finish_reason, done.completion_tokens) == ("```x", "length", 1)


def test_cpu_threads_follow_omp_num_threads_else_every_core(monkeypatch):
    import os

    from evolab.backends.base import cpu_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # OpenMP's nested form: the outer level
    assert cpu_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads() == os.cpu_count()


def test_a_metrics_file_is_sorted_indented_json_with_a_newline(tmp_path):
    from evolab.core.stage import dump_json

    dump_json({"b": 1, "a": [1]}, tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'


def test_a_removal_is_recorded_with_its_check_match_and_rounded_score():
    from evolab.curation.decontamination import Removal

    assert Removal("x", "ngram", "HumanEval/3", 0.123456).as_record() == {
        "id": "x", "check": "ngram", "match": "HumanEval/3", "score": 0.1235}


def test_a_call_is_tried_retries_plus_one_times_with_backoff_then_recorded_with_each_error(monkeypatch):
    slept = []
    monkeypatch.setattr("evolab.backends.base.time.sleep", slept.append)

    class Failing(Backend):
        identity = {"backend": "failing"}

        def __init__(self, failures, retryable=True, config=None):
            super().__init__(config or {"retries": 2, "backoff": 0.5})
            self.failures, self.calls, self.may_retry = failures, 0, retryable

        def retryable(self, err):
            return self.may_retry and isinstance(err, TimeoutError)

        def _generate(self, request, sampling):
            self.calls += 1
            if self.calls <= self.failures:
                raise TimeoutError(f"try {self.calls}")
            return Completion("ok", "stop")

    passing = Failing(2)
    done = passing.generate("x", Sampling(max_tokens=8))
    assert (done.text, done.attempts, passing.calls, passing.live_calls, slept) == ("ok", 3, 3, 1, [1.0, 2.0])
    failing = Failing(9)
    failed = failing.generate("x", Sampling(max_tokens=8))
    assert (failed.finish_reason, failed.attempts, failing.calls, failing.live_calls) == ("error", 3, 3, 1)
    assert failed.error == "TimeoutError: try 1 | TimeoutError: try 2 | TimeoutError: try 3" and failed.text == ""
    slept.clear()
    assert Failing(9, config={"retries": 5}).generate("x", Sampling(max_tokens=8)).attempts == 6
    assert slept == [2.0, 4.0, 8.0, 16.0, 30.0]  # doubling, capped at 30 s, backoff 1 by default
    once = Failing(9, retryable=False)
    assert once.generate("x", Sampling(max_tokens=8)).attempts == 1 and once.calls == 1


def test_the_response_cache_makes_its_folders_and_serves_other_threads(tmp_path):
    import threading

    cache = ResponseCache(tmp_path / "a/b/responses.sqlite")
    cache.put("k", {"text": "t"})
    seen = []
    thread = threading.Thread(target=lambda: seen.append(cache.get("k")))
    thread.start()
    thread.join()
    assert seen == [{"text": "t"}] and len(cache) == 1


def test_prompts_carry_the_input_the_system_prompt_and_name_a_wrong_style_or_template():
    from evolab.core.prompts import chat_messages, question_of

    assert question_of(" Sum. ", " [1, 2] ") == "Sum.\n[1, 2]"
    assert question_of(" Sum. ", None) == question_of("Sum.") == "Sum."
    assert chat_messages("", "hi") == chat_messages(None, "hi") == [{"role": "user", "content": "hi"}]
    eval_cfg = settings("eval", system_prompt="S", chat_instruction="Solve:\n{prompt}")
    assert eval_request(Problem("T/0", " def f(): ", "f"), "instruct", eval_cfg, TRAIN) == [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Solve:\ndef f():"}]
    assert sft_example("wizardcoder", TRAIN, item(instruction="Sum.", output=" 3\n")) == {
        "prompt": "### Instruction:\nSum.\n\n### Response:\n", "completion": "3"}
    with pytest.raises(ValueError, match="unknown prompt style 'chatty': tuned, instruct or base"):
        eval_request(Problem("T/0", "x", "f"), "chatty", eval_cfg, TRAIN)
    with pytest.raises(Exception, match=r"train.template must be one of .*, got 'alpaca' \(conf/train/\*.yaml or -S train.template=chat\)"):
        template_kind("alpaca", "instruct")


def test_records_are_written_as_utf8_text_into_new_folders_and_read_from_a_local_dataset(tmp_path):
    from evolab.core.errors import ConfigError
    from evolab.core.records import load_seed_records

    path = tmp_path / "new/folder/out.jsonl"
    write_jsonl([{"instruction": "Trier la liste é"}], path)
    assert path.read_text(encoding="utf-8") == '{"instruction": "Trier la liste é"}\n'
    folder = tmp_path / "dataset"  # a dataset folder, as a hub id is read: one file per split
    write_jsonl([{"instruction": "train task"}], folder / "train.jsonl")
    write_jsonl([{"instruction": "dev task"}], folder / "dev.jsonl")
    assert load_seed_records(None, str(folder)) == [{"instruction": "train task"}]
    assert load_seed_records(None, str(folder), "validation") == [{"instruction": "dev task"}]
    write_jsonl([{"instruction": ""}], tmp_path / "bad/train.jsonl")
    with pytest.raises(ConfigError, match=f"Hugging Face dataset {tmp_path / 'bad'}, record 0: needs a non-empty"):
        load_seed_records(None, str(tmp_path / "bad"))
    (tmp_path / "seeds.jsonl").write_text('{"instruction": "a"}\n\n{"instruction": 3}\n')
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'seeds.jsonl'}, line 3: needs a non-empty"):
        load_seed_records(str(tmp_path / "seeds.jsonl"))


def test_a_file_that_is_not_a_cache_says_how_to_move_it_away_and_a_locked_cache_waits(tmp_path, monkeypatch):
    import sqlite3
    import threading
    import time

    from evolab.core.cache import response_cache

    bad = tmp_path / "responses.sqlite"
    bad.write_text("not a database" * 100)
    with pytest.raises(StageError, match=r"is not a response cache .*Move it away \(`mv .*\.bad`\): the answers in it are "
                                         r"then asked again; or point EVOLAB_CACHE at another folder\."):
        ResponseCache(bad)
    monkeypatch.setenv("EVOLAB_CACHE", str(tmp_path / "home"))
    response_cache().put("k", {"text": "t"})
    assert ResponseCache(tmp_path / "home/responses.sqlite").get("k") == {"text": "t"}
    # Another process holding the write lock for longer than sqlite's default 5 s wait: a put waits for it.
    holder = sqlite3.connect(str(tmp_path / "home/responses.sqlite"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(5.5, lambda: holder.execute("COMMIT"))
    release.start()
    start = time.monotonic()
    response_cache().put("k2", {"text": "u"})
    assert time.monotonic() - start > 5 and len(ResponseCache(tmp_path / "home/responses.sqlite")) == 2
    release.join()


class Batching(Backend):
    """A batching engine: answers each request of a chunk with a fenced block (closed or not, by the request),
    fails a whole chunk holding a request with BAD (as vLLM fails a batch over its context), records chunk sizes."""

    batched = True
    identity = {"backend": "batching"}

    def __init__(self, config, cache=None):
        super().__init__({"retries": 0, **config}, cache)
        self.chunks: list[int] = []

    def _answer(self, request):
        return Completion(f"{request}:\n```\nx\n```\nmore" if "open" not in request else f"{request}:\n```\nx", "length", 9)

    def _generate_batch(self, requests, done):
        self.chunks.append(len(requests))
        if len(requests) > 1 and any("BAD" in r for r, _ in requests):
            raise ValueError("over the context")
        for j, (request, _) in reversed(list(enumerate(requests))):  # finished out of order
            if "BAD" in request:
                raise ValueError("over the context")
            done(j, self._answer(request))

    def _generate(self, request, sampling):  # the one-by-one retry of a failed chunk
        self.chunks.append(1)
        if "BAD" in request:
            raise ValueError("over the context")
        return self._answer(request)


def test_a_batching_backend_answers_in_chunks_in_order_caches_each_and_isolates_a_failed_chunk(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    sampling = Sampling(max_tokens=9, until_code_block=True)
    prompts = ["q0", "q1", "q2 open", "q3", "q4 BAD", "q5", "q6"]
    seen: list[int] = []
    backend = Batching({"batch_chunk": 3}, cache)
    results = backend.generate_all([(p, sampling) for p in prompts], progress=seen.append)
    assert backend.chunks == [3, 3, 1, 1, 1, 1]  # the chunk with q4 asked again one by one
    assert [(r.text, r.finish_reason) for r in results[:3]] == [
        ("q0:\n```\nx\n```", "stop"), ("q1:\n```\nx\n```", "stop"), ("q2 open:\n```\nx", "length")]
    assert [r.ok for r in results] == [True] * 4 + [False] + [True] * 2 and "over the context" in results[4].error
    assert sorted(seen) == list(range(7)) and seen[:3] == [2, 1, 0] and backend.live_calls == 7 and len(cache) == 6
    again = Batching({"batch_chunk": 3}, cache)
    assert [r.text for r in again.generate_all([(p, sampling) for p in prompts])] == [r.text for r in results]
    assert again.cached_calls == 6 and again.chunks == [1, 1] and again.live_calls == 1  # only the failure is retried
    default = Batching({}, ResponseCache(tmp_path / "other.sqlite"))
    default.generate_all([(f"p{i}", Sampling(max_tokens=9)) for i in range(300)])
    assert default.chunks == [256, 44]


def test_a_backend_keeps_concurrency_requests_in_flight_and_no_more():
    import threading
    import time

    class Slow(Backend):
        identity = {"backend": "slow"}

        def __init__(self, config):
            super().__init__(config)
            self.lock, self.now, self.most = threading.Lock(), 0, 0

        def _generate(self, request, sampling):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.05)
            with self.lock:
                self.now -= 1
            return Completion(request, "stop")

    for concurrency, expected in ((None, 1), (1, 1), (2, 2), (3, 3)):
        backend = Slow({"concurrency": concurrency})
        seen: list[int] = []
        results = backend.generate_all([(f"r{i}", Sampling(max_tokens=1)) for i in range(9)], progress=seen.append)
        assert [r.text for r in results] == [f"r{i}" for i in range(9)] and sorted(seen) == list(range(9))
        assert (backend.config.concurrency, backend.most) == (expected, expected)
    assert Backend({}).config.retries == 2


def test_calls_and_cache_hits_are_counted_and_a_code_block_is_cut_where_it_first_closes(tmp_path, monkeypatch):
    from evolab.backends.base import cpu_threads, cut_after_code_block

    cache = ResponseCache(tmp_path / "responses.sqlite")
    backend = Counting({"model": "m"}, cache)
    for prompt in ("a", "b", "a", "b"):
        backend.generate(prompt, Sampling(max_tokens=4))
    assert (backend.live_calls, backend.cached_calls) == (2, 2)
    assert cut_after_code_block("```a``` b ```c``` d") == ("```a```", True)
    assert cut_after_code_block("``````x") == ("``````", True)
    assert cut_after_code_block("no fence at all") == ("no fence at all", False)
    assert cut_after_code_block("```open") == ("```open", False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert cpu_threads() == 1


def test_the_registry_lists_one_module_per_backend_and_imports_one_on_first_use(monkeypatch):
    import sys

    from evolab.backends import base

    assert base.available() == ["llama_cpp", "openai", "transformers", "vllm"]
    monkeypatch.delitem(base.BACKENDS, "openai", raising=False)
    monkeypatch.delitem(sys.modules, "evolab.backends.openai", raising=False)
    backend = base.make_backend({"backend": "openai", "base_url": "http://127.0.0.1:9", "model": "m"})
    assert type(backend).__module__ == "evolab.backends.openai" and base.BACKENDS["openai"] is type(backend)


def test_a_cache_key_does_not_depend_on_the_order_its_parts_were_built_in():
    from evolab.core.cache import cache_key

    assert cache_key(a=1, b={"x": 1, "y": 2}) == cache_key(b={"y": 2, "x": 1}, a=1)
    assert cache_key(a=1) != cache_key(a=2)


def test_records_are_written_as_utf8_whatever_the_locale(tmp_path):
    import subprocess
    import sys

    script = "from evolab.core.records import write_jsonl; write_jsonl([{'a': 'é'}], 'out.jsonl')"
    subprocess.run([sys.executable, "-X", "warn_default_encoding", "-W", "error::EncodingWarning", "-c", script],
                   cwd=tmp_path, check=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    write_jsonl([{"a": "é"}], tmp_path / "here.jsonl")  # the same write in this process
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "here.jsonl").read_bytes() == '{"a": "é"}\n'.encode("utf-8")


def test_seed_data_errors_name_the_field_and_the_fix_and_a_dataset_is_not_read_at_composition(tmp_path):
    from evolab.core.derived import check_rounds, seed_records
    from evolab.core.errors import ConfigError
    from evolab.core.records import check_seed_source, validate_records

    assert seed_records(str(tmp_path / "missing.jsonl"), "someone/dataset") is None
    assert check_seed_source(str(tmp_path / "missing.jsonl"), "someone/dataset") is None
    with pytest.raises(ConfigError, match=r"instruction records \(e.g. `dvc exp run -S seed_data.path=my_seeds.jsonl`\)\.$"):
        check_seed_source(str(tmp_path / "missing.jsonl"), None)
    with pytest.raises(ConfigError, match=r"\(WizardCoder used 3; 0 trains on the seed answers alone\)\.$"):
        check_rounds(-1)
    with pytest.raises(ConfigError, match=r"^s, record 0: input, output must be text, got int, list; quote the value"):
        validate_records([{"instruction": "x", "input": 3, "output": [1]}], "s")
    with pytest.raises(ConfigError, match=r"^s, record 0: input must be text, got int"):
        validate_records([{"instruction": "x", "input": 3}], "s")
    with pytest.raises(ConfigError, match=r"with an 'instruction', got list\.$"):
        validate_records([["x"]], "s")
