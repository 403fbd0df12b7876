from dataclasses import replace

from helpers import ROOT, default_experiment

from evolab.backends import Backend, Completion, Sampling
from evolab.core.cache import ResponseCache
from evolab.core.records import MethodRecord
from evolab.methods.code_evol import Evolution, Parent, answer_failure, evolve_items, instruction_failure, item_seed, pool_for_next_round

METHOD = default_experiment().method
RULES = METHOD.elimination
GOOD_ANSWER = "def f(xs):\n    return sorted(set(xs))\n\nThis sorts the unique values of the list in ascending order."


def ok(text, reason="stop"):
    return Completion(text, reason)


def record(**fields) -> MethodRecord:
    """A method's record with the fields given; the others: round 0, no input or output, kept."""
    return MethodRecord.of({"round": 0, "input": "", "output": "", "kept": True, "reason": "kept", **fields})


def evolved_rows(*args, **kwargs) -> list[dict]:
    """evolve_items' round 1 as data/evolve/r1.jsonl holds it."""
    return [e.record(1).row() for e in evolve_items(*args, **kwargs)]


def evolution(i, reason, heuristic, errors=(), retried=0, instruction_tokens=10, answer_tokens=20) -> Evolution:
    """An item's way through a round, its calls made up of `retried` calls that took two tries and failed `errors`."""
    calls = [Completion("", "stop", attempts=2)] * retried + [Completion("", "error", error=e) for e in errors]
    return Evolution(f"s{i}", heuristic, "", 0, calls, instruction_tokens=instruction_tokens, answer_tokens=answer_tokens,
                     reason=None if reason == "kept" else reason)


def test_elimination_follows_the_evol_instruct_cases():
    parent = "Write a function that sorts a list."
    harder = "Write a function that sorts a list of tuples by their second item, stably, in O(n log n)."
    assert instruction_failure(parent, ok(harder), RULES) is None
    assert instruction_failure(parent, ok("  write a function that SORTS a list. "), RULES) == "unchanged"
    assert instruction_failure(parent, ok("#Rewritten Prompt#: sort it"), RULES) == "template_leak"
    assert instruction_failure(parent, ok("Increase the difficulty by sorting twice"), RULES) == "template_leak"
    assert instruction_failure(parent, ok(""), RULES) == "empty_instruction"
    assert instruction_failure(parent, ok(harder, "length"), RULES) == "truncated_instruction"
    assert instruction_failure(parent, Completion("", "error", error="boom"), RULES) == "teacher_error"
    assert answer_failure(ok(GOOD_ANSWER), RULES) is None
    assert answer_failure(ok("I'm sorry, I cannot help with that."), RULES) == "refusal"
    assert answer_failure(ok("the, and... of!"), RULES) == "empty_answer"
    assert answer_failure(ok(GOOD_ANSWER, "length"), RULES) == "truncated_answer"
    assert answer_failure(Completion("", "error", error="boom"), RULES) == "teacher_error"
    assert answer_failure(ok("Sorry for the wait. " + GOOD_ANSWER + " word" * 80), RULES) is None


def test_a_rewrite_no_longer_than_its_parent_is_not_harder_and_a_teachers_note_follows_the_template():
    from evolab.methods.code_evol import evolution_template

    parent = "Write a function that sorts a list."
    rules = replace(RULES, min_added_words=3)
    assert instruction_failure(parent, ok("Write a function that sorts a list of tuples."), rules) == "not_harder"  # 2 words more
    assert instruction_failure(parent, ok("Write a Python function that sorts a list."), rules) == "not_harder"
    assert instruction_failure(parent, ok("Write a function that sorts a list of tuples stably."), rules) is None
    assert instruction_failure(parent, ok("Sort it."), replace(RULES, min_added_words=0)) == "not_harder"  # shorter: never harder
    method = replace(METHOD, template="Make it harder:\n{question}")
    assert evolution_template(method, None) == method.template
    assert evolution_template(method, "Write the question only.") == "Make it harder:\n{question}\n\nWrite the question only."


def test_a_failed_evolution_gets_no_answer():
    teacher = ScriptedTeacher(failures=0, evolved="Please increase the difficulty of this question.")
    record = run_item(teacher)
    assert record["reason"] == "template_leak" and record["output"] == "" and teacher.calls == 1


def test_failed_items_return_their_parent_to_the_pool_or_leave_it():
    records = [record(id="a", kept=True, instruction="new a", parent_instruction="old a"),
               record(id="b", kept=False, instruction="junk", parent_instruction="old b")]
    assert [p.question for p in pool_for_next_round(records, "parent")] == ["new a", "old b"]
    assert [p.question for p in pool_for_next_round(records, "drop")] == ["new a"]
    seed = record(id="s", instruction="Sum a list.", input="[1, 2]", output="sum(xs)")
    assert pool_for_next_round([seed], "parent") == [Parent("s", "Sum a list.\n[1, 2]")]


def test_item_seed_depends_on_item_and_round_not_on_order():
    assert item_seed(42, 1, "seed-001") == item_seed(42, 1, "seed-001")
    assert len({item_seed(42, 1, "seed-001"), item_seed(42, 2, "seed-001"), item_seed(42, 1, "seed-002"),
                item_seed(7, 1, "seed-001")}) == 4


class ScriptedTeacher(Backend):
    """A deterministic stand-in that fails its first `failures` calls: exercises retry and recording."""

    def __init__(self, failures, cache=None, evolved="Write a function that sorts a list of tuples by their second item.",
                 verdict="Not Equal"):
        super().__init__({"retries": 2, "backoff": 0}, cache)
        self.failures, self.calls, self.evolved, self.verdict = failures, 0, evolved, verdict

    @property
    def identity(self):
        return {"backend": "scripted"}

    def _generate(self, messages, sampling):
        self.calls += 1
        if self.calls <= self.failures:
            raise TimeoutError("teacher timed out")
        prompt = messages[-1]["content"]
        if prompt.startswith("Please increase"):
            return Completion(self.evolved, "stop", 12)
        if prompt.startswith("Here are two Instructions"):
            return Completion(self.verdict, "stop", 2)
        return Completion(GOOD_ANSWER, "stop", 20)


def run_item(teacher):
    greedy = Sampling(max_tokens=64)
    return evolved_rows([Parent("seed-000", "Write a function that sorts a list.")], 1, METHOD, teacher, None, greedy, greedy,
                        seed=42)[0]


def test_a_failing_call_is_retried_then_succeeds():
    teacher = ScriptedTeacher(failures=2)
    record = run_item(teacher)
    assert record["kept"] and record["errors"] == [] and record["retried_calls"] == 1
    assert teacher.calls == 5  # two failures, then evolve, judge and answer


def test_an_evolution_the_judge_finds_equal_to_its_parent_is_eliminated():
    record = run_item(ScriptedTeacher(failures=0, verdict="Equal"))
    assert not record["kept"] and record["reason"] == "no_information_gain" and record["output"] == ""
    assert run_item(ScriptedTeacher(failures=0, verdict="Not Equal."))["kept"]


def test_a_call_that_never_succeeds_is_recorded_not_dropped():
    record = run_item(ScriptedTeacher(failures=100))
    assert not record["kept"] and record["reason"] == "teacher_error"
    assert "TimeoutError: teacher timed out" in record["errors"][0]


def test_cached_responses_make_a_rerun_call_nothing(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    first = run_item(ScriptedTeacher(failures=0, cache=cache))
    again = ScriptedTeacher(failures=0, cache=ResponseCache(tmp_path / "cache.sqlite"))
    assert run_item(again) == first and again.calls == 0


def test_a_chat_preamble_before_the_evolved_question_is_removed():
    from evolab.methods.code_evol import clean_instruction

    assert clean_instruction("Sure! Here is the harder version:\nSort the tuples by their second item.") == (
        "Sort the tuples by their second item."
    )
    assert clean_instruction("Sort tuples:\nby their second item.") == "Sort tuples:\nby their second item."



def test_an_evolution_that_is_not_a_task_is_eliminated_with_its_own_reason():
    """The two kept 'evolutions' of the old default run, and each other way of not posing a task."""
    parent = "Create a function that converts a temperature from Celsius to Fahrenheit."
    cases = {
        "You can create a function that converts Celsius to Fahrenheit by multiplying by 9/5 and adding 32.":
            "statement_not_task",
        "```python\ndef celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32\n\nprint(celsius_to_fahrenheit(100))\n```":
            "code_not_task",
        "Here is the solution:\n```python\ndef f(c):\n    return c * 9 / 5 + 32\n```": "solution_not_task",
        # five of the seven kept evolutions of the first gain_cpu run: code, then what it does
        "```python\ndef f(c):\n    return c * 9 / 5 + 32\n```\n\nThis function first checks the input, then returns "
        "the Fahrenheit value.": "solution_not_task",
        "Add constraint that the list may contain duplicate elements, increasing the difficulty.": "meta_not_task",
        "The original problem only converted one value; the revised version converts a list, which is harder.":
            "meta_not_task",
        "Celsius and Fahrenheit are two temperature scales used around the world.": "no_task",
    }
    for text, reason in cases.items():
        assert instruction_failure(parent, ok(text), RULES) == reason, text
    tasks = [
        "Write a function that converts a list of Celsius temperatures to Fahrenheit, rounding each to one decimal.",
        "Can you write a Python function to convert a temperature from Celsius to Fahrenheit?",
        "Given a list of readings in Celsius, return the Fahrenheit values of those above freezing.",
        # misdirection: erroneous code inside a task is a task
        "Fix the function below so it converts Celsius to Fahrenheit correctly.\n```python\ndef f(c):\n    return c * 5 / 9 + 32\n```",
        "```python\ndef f(c):\n    return c * 5 / 9 + 32\n```\nFix this function so it converts Celsius to Fahrenheit.",
    ]
    for text in tasks:
        assert instruction_failure(parent, ok(text), RULES) is None, text


def test_the_teacher_answers_the_seeds_and_the_file_output_stays_as_reference():
    from evolab.methods.code_evol import answer_seeds

    seeds = [record(id="seed-000", instruction="Sort a list.", output="sorted(xs)", reason="seed")]
    greedy = Sampling(max_tokens=64)
    answered = answer_seeds(seeds, ScriptedTeacher(failures=0), None, greedy, 42, RULES)[0].row()
    assert answered["output"] == GOOD_ANSWER.strip() and answered["reference"] == "sorted(xs)"
    assert answered["answer_reason"] == "teacher" and answered["kept"]
    failed = answer_seeds(seeds, ScriptedTeacher(failures=100), None, greedy, 42, RULES)[0].row()
    assert failed["output"] == "sorted(xs)" and failed["answer_reason"] == "teacher_error"
    assert "TimeoutError: teacher timed out" in failed["errors"][0]


def test_the_elimination_agrees_with_the_hand_labels_as_reported():
    """evolab/data/elimination_labels.jsonl: evolved instructions from a real default run, labelled by reading
    them; the rules must keep agreeing with them at least as well as reports/elimination_labels.md says."""
    import re
    import runpy

    script = runpy.run_path(str(ROOT / "scripts/elimination_agreement.py"))
    rows = script["read_jsonl"](ROOT / "evolab/data/elimination_labels.jsonl")
    assert len(rows) >= 30 and {row["label"] for row in rows} == {"task", "not_task"} and all(row["note"] for row in rows)
    result = script["agreement"](rows)
    reported = int(re.search(r"Agreement: (\d+) of", (ROOT / "reports/elimination_labels.md").read_text()).group(1))
    assert result["agree"] >= reported, f"the elimination now agrees with {result['agree']} labels, the report says {reported}"


def test_round_stats_count_what_was_kept_and_why():
    from evolab.methods.code_evol import round_stats

    records = [evolution(0, "kept", "constraints", instruction_tokens=10, answer_tokens=21),
               evolution(1, "kept", "reasoning", retried=2, instruction_tokens=15, answer_tokens=40),
               evolution(2, "no_information_gain", "constraints", instruction_tokens=99, answer_tokens=99),
               evolution(3, "failed_call", "misdirection", errors=["timeout"], retried=1)]
    assert round_stats(records) == {
        "items": 4, "kept": 2, "eliminated": 2, "reasons": {"kept": 2, "no_information_gain": 1, "failed_call": 1},
        "heuristics": {"constraints": 2, "reasoning": 1, "misdirection": 1}, "failed_calls": ["s3"], "retried_calls": 3,
        "mean_instruction_tokens": 12.5, "mean_answer_tokens": 30.5}
    nothing = round_stats([records[2]])
    assert (nothing["kept"], nothing["mean_instruction_tokens"], nothing["mean_answer_tokens"]) == (0, 0.0, 0.0)


def test_a_kept_evolution_asks_exactly_the_three_requests_and_records_each_answer():
    """Evolve, judge, answer: each under the system prompt, with the method's template and the judge's, each with
    its own seed (the item's, +2 for the judge, +1 for the answer); the record carries what each answer said."""
    asked = []

    class Recording(ScriptedTeacher):
        def _generate(self, messages, sampling):
            asked.append((messages, sampling))
            return super()._generate(messages, sampling)

    item = Parent("seed-000", "Write a function that sorts a list.")
    evolve, answer = Sampling(max_tokens=64, temperature=1.0), Sampling(max_tokens=96)
    [row] = evolved_rows([item], 1, METHOD, Recording(failures=0), "Be brief.", evolve, answer, seed=42)
    s = item_seed(42, 1, "seed-000")
    heuristic = row["heuristic"]
    evolved = "Write a function that sorts a list of tuples by their second item."
    system = {"role": "system", "content": "Be brief."}
    assert asked == [
        ([system, {"role": "user", "content": METHOD.template.format(method=METHOD.heuristics[heuristic],
                                                                       question=item.question)}], evolve.with_seed(s)),
        ([system, {"role": "user", "content": METHOD.judge.format(first=item.question, second=evolved)}],
         Sampling(max_tokens=8, seed=s + 2)),
        ([system, {"role": "user", "content": evolved}], answer.with_seed(s + 1))]
    assert row == {"id": "seed-000", "round": 1, "instruction": evolved, "input": "", "output": GOOD_ANSWER, "kept": True,
                   "reason": "kept", "errors": [], "part": "code_evol", "heuristic": heuristic,
                   "parent_instruction": item.question, "retried_calls": 0, "instruction_tokens": 12, "answer_tokens": 20,
                   "teacher_tokens": {"calls": 3, "prompt_tokens": 0, "completion_tokens": 34}}
    assert list(row)[:9] == ["id", "round", "instruction", "input", "output", "kept", "reason", "errors", "part"]
    asked.clear()
    evolve_items([item], 1, METHOD, Recording(failures=0), None, evolve, answer, seed=42)
    assert all(messages[0]["role"] == "user" and len(messages) == 1 for messages, _ in asked)  # no system prompt


def test_seed_answers_ask_each_seed_under_the_system_prompt_with_its_own_seed():
    from evolab.methods.code_evol import answer_seeds

    asked = []

    class Recording(ScriptedTeacher):
        def _generate(self, messages, sampling):
            asked.append((messages, sampling))
            return super()._generate(messages, sampling)

    seeds = [record(id="s0", instruction="Sum a list.", output="sum(xs)"),
             record(id="s1", instruction="Sort a list.", input="[3, 1]", output="sorted(xs)")]
    sampling = Sampling(max_tokens=96)
    out = [r.row() for r in answer_seeds(seeds, Recording(failures=0), "Be brief.", sampling, 7, RULES)]
    assert [s for _, s in asked] == [sampling.with_seed(item_seed(7, 0, "s0") + 1), sampling.with_seed(item_seed(7, 0, "s1") + 1)]
    assert asked[0][0] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sum a list."}]
    assert asked[1][0][-1]["content"].startswith("Sort a list.") and "[3, 1]" in asked[1][0][-1]["content"]
    assert out[0] == {**seeds[0].row(), "output": GOOD_ANSWER, "reference": "sum(xs)", "answer_reason": "teacher",
                      "answer_tokens": 20, "teacher_tokens": {"calls": 1, "prompt_tokens": 0, "completion_tokens": 20},
                      "errors": [], "retried_calls": 0}
    refused = answer_seeds(seeds[:1], ScriptedTeacher(failures=5), None, sampling, 7, RULES)[0].row()
    assert (refused["output"], refused["answer_reason"], refused["retried_calls"]) == ("sum(xs)", "teacher_error", 1)
    assert refused["errors"] == ["TimeoutError: teacher timed out | TimeoutError: teacher timed out | TimeoutError: teacher timed out"]


def test_each_phase_is_logged_a_refused_answer_drops_the_item_and_one_retry_counts():
    class Refusing(ScriptedTeacher):
        def _generate(self, messages, sampling):
            done = super()._generate(messages, sampling)
            return Completion("I'm sorry, I cannot help.", "stop", 5) if done.text == GOOD_ANSWER else done

    item = Parent("seed-000", "Write a function that sorts a list.")
    logged: list[str] = []
    [row] = evolved_rows([item], 1, METHOD, Refusing(failures=1), None, Sampling(8), Sampling(8), seed=1, log=logged.append)
    assert logged == ["evolved 1/1 seed-000", "judged 1/1 seed-000", "answered 1/1 seed-000"]
    assert (row["kept"], row["reason"], row["retried_calls"]) == (False, "refusal", 1)  # the first call, tried twice
    leaked = run_item(ScriptedTeacher(failures=0, evolved="Please increase the difficulty of this question."))
    assert leaked["answer_tokens"] == 0 and leaked["reason"] == "template_leak"


def test_seed_answers_are_logged_and_a_call_that_passed_on_its_second_try_counts_as_retried():
    from evolab.methods.code_evol import answer_seeds

    seeds = [record(id="s0", instruction="Sum a list.", output="sum(xs)")]
    logged: list[str] = []
    out = answer_seeds(seeds, ScriptedTeacher(failures=1), None, Sampling(max_tokens=96), 7, RULES, log=logged.append)
    assert logged == ["answered 1/1 s0"] and out[0].more["retried_calls"] == 1 and out[0].output == GOOD_ANSWER


def test_the_elimination_boundaries_and_the_pool_entries_in_full():
    from evolab.methods.code_evol import clean_instruction, judge_failure

    words = RULES.refusal_max_words
    at_limit = " ".join(["sorry"] + ["word"] * (words - 1))  # exactly refusal_max_words words: long enough to be an answer
    assert answer_failure(ok(at_limit), RULES) is None and answer_failure(ok(at_limit.rsplit(" ", 1)[0]), RULES) == "refusal"
    parent = "Write a function that sorts a list."
    same_length = "Write a function that reverses a list."
    assert instruction_failure(parent, ok(same_length), replace(RULES, min_added_words=0)) is None
    assert instruction_failure("Count words in Straße.", ok("Count words in STRASSE."), RULES) != "unchanged"
    assert judge_failure(Completion("", "error", error="boom")) == "teacher_error"
    assert clean_instruction("Sure, here it is:") == "Sure, here it is:"  # a preamble alone is all there is
    assert clean_instruction("Here is the harder version:  \nSort the tuples.") == "Sort the tuples."
    records = [record(id="a", instruction="new a"),
               record(id="b", kept=False, instruction="junk", parent_instruction="old b", input="dropped")]
    assert pool_for_next_round(records, "parent") == [Parent("a", "new a"), Parent("b", "old b")]


def test_item_seeds_fit_the_32_bits_a_sampling_seed_has():
    from evolab.evaluation.verification import attempt_seed

    seeds = [item_seed(42, k, f"seed-{i:03d}") for k in range(3) for i in range(100)]
    attempts = [attempt_seed(42, f"seed-{i:03d}", k) for k in range(3) for i in range(100)]
    assert all(0 <= s < 2**32 for s in seeds + attempts) and max(seeds) > 2**31 and max(attempts) > 2**31
    assert len(set(seeds)) == len(set(attempts)) == 300
    assert attempt_seed(1, "seed-000", 2) != attempt_seed(2, "seed-000", 2)  # the run's seed is part of it


def test_what_counts_as_a_request_and_as_code_in_an_evolved_instruction():
    from evolab.methods.code_evol import round_stats, task_failure

    rules = RULES.not_task
    assert task_failure("What is the longest palindromic substring of a string?", rules) is None  # a question asks
    assert task_failure("Your task: the longest palindromic substring of a string.", rules) is None  # a phrase asks
    assert task_failure("Rewrite the sentence for the blog post.", rules) == "no_task"  # 'write' inside a word does not
    assert task_failure("Look at this.\nimport os\nfor p in os.listdir():\n    if p:\n        x = p", rules) == "code_not_task"
    assert task_failure("Look at it.\nNothing else.\nimport os\nimport re\nimport sys", rules) == "code_not_task"  # 3 of 5: 0.6
    assert task_failure("Look at the list.\nIt has items.\nimport os", rules) == "no_task"  # 1 of 3 lines is code
    two_blocks = "```python\nx = 1\n```\n```python\ny = 2\n```\nThis shows two values."
    assert task_failure(two_blocks, rules) == "code_not_task"  # what follows the first block is code, not a description
    kept = [evolution(i, "kept", "h", instruction_tokens=t, answer_tokens=t) for i, t in enumerate((1, 2, 2))]
    assert round_stats(kept)["mean_instruction_tokens"] == 1.7
