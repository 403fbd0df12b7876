"""evolab-tasks: a verifiable task suite that no model has seen, made by composing small list and text
operations. Each task is a HumanEval-format problem (a signature and a docstring that states every step,
a reference solution, exact tests) and every task's composition (the sequence of its operations' names) is
assigned to one split by a hash of that sequence, so the held-out test split shares no composition with the
training pool or the dev split (tests/test_task_suite.py checks it on the committed files).

    python -m evolab.evaluation.task_suite      # writes evolab/data/tasks/{train,dev,test}.jsonl

Why (a positive control, reports/positive_control.md): HumanEval resolves only large effects here, and no
data the teachers write has tests. This suite's tasks are new compositions, so neither student nor teacher
has seen them; their tests are exact; and a training pool from the same operations lets a run show
that training on verified data helps on compositions it never saw. Its difficulty (operations per task,
an example in the docstring) was chosen on the dev split alone (reports/positive_control_plan.md).

The training pool is written as seed records (instruction = evalplus's chat request for the task, the
task's own asserts in `tests`, the reference solution in `reference`); dev and test as benchmark problems
(evolab/evaluation/suites.py: `evolab-tasks-dev`, `evolab-tasks`).
"""
from __future__ import annotations

import argparse
import hashlib
import random
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

from evolab.core.records import Problem, Record, write_jsonl, write_rows

FOLDER = Path(__file__).resolve().parents[1] / "data" / "tasks"
SPLITS = ("train", "dev", "test")
# The request every task is asked with: evalplus's openai instruction (conf/eval/humaneval.yaml's chat_instruction).
CHAT_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a markdown "
                    "code block:\n```python\n{prompt}\n```")


@dataclass(frozen=True)
class Op:
    """One step: its name (a composition is a sequence of names), the value it takes and gives, what the
    docstring says and what the reference runs (`{k}`: the step's parameter, drawn from `params`). Ops of one
    `group` (orderings, cases...) never follow each other: sort then reverse-sort is no task."""
    name: str
    takes: str          # list | text
    gives: str          # list | text | int | dict
    says: str
    code: str
    params: tuple[Any, ...] = ()
    group: str = ""


def _ops(takes: str, rows: list[tuple]) -> dict[str, Op]:
    return {row[0]: Op(row[0], takes, *row[1:]) for row in rows}


# List steps: `nums` is a list of integers.
LIST_STEPS = _ops("list", [
    ("keep_even", "list", "keep only the even numbers", "nums = [x for x in nums if x % 2 == 0]", (), "parity"),
    ("keep_odd", "list", "keep only the odd numbers", "nums = [x for x in nums if x % 2 != 0]", (), "parity"),
    ("keep_above", "list", "keep only the numbers greater than {k}", "nums = [x for x in nums if x > {k}]", (0, 2, 5), "range"),
    ("keep_below", "list", "keep only the numbers less than {k}", "nums = [x for x in nums if x < {k}]", (3, 8, 10), "range"),
    ("drop_multiples", "list", "remove every number that is divisible by {k}", "nums = [x for x in nums if x % {k} != 0]",
     (3, 4, 5), "divisible"),
    ("add", "list", "add {k} to every number", "nums = [x + {k} for x in nums]", (1, 3, 7), "arith"),
    ("multiply", "list", "multiply every number by {k}", "nums = [x * {k} for x in nums]", (2, 3, -1), "arith"),
    ("square", "list", "replace every number by its square", "nums = [x * x for x in nums]", (), "arith"),
    ("absolute", "list", "replace every number by its absolute value", "nums = [abs(x) for x in nums]", (), "sign"),
    ("remainder", "list", "replace every number by its remainder after division by {k} (a number from 0 to {k} minus 1)",
     "nums = [x % {k} for x in nums]", (3, 4, 10), "divisible"),
    ("sort_up", "list", "sort the numbers from smallest to largest", "nums = sorted(nums)", (), "order"),
    ("sort_down", "list", "sort the numbers from largest to smallest", "nums = sorted(nums, reverse=True)", (), "order"),
    ("reverse", "list", "reverse the order of the numbers", "nums = nums[::-1]", (), "order"),
    ("rotate_left", "list", "rotate the list left by {k} positions (each position moves the first number to the end; "
     "an empty list stays empty)", "nums = nums[{k} % len(nums):] + nums[:{k} % len(nums)] if nums else nums", (1, 2), "order"),
    ("first", "list", "keep only the first {k} numbers (all of them if there are fewer)", "nums = nums[:{k}]", (3, 4), "slice"),
    ("drop_first", "list", "drop the first {k} numbers (none remain if there are fewer)", "nums = nums[{k}:]", (1, 2), "slice"),
    ("last", "list", "keep only the last {k} numbers (all of them if there are fewer)", "nums = nums[-{k}:]", (2, 3), "slice"),
    ("unique", "list", "remove repeated numbers, keeping the first occurrence of each",
     "nums = list(dict.fromkeys(nums))", (), "unique"),
    ("even_positions", "list", "keep only the numbers at even positions (positions 0, 2, 4, ...)", "nums = nums[::2]", (),
     "slice"),
    ("running_sum", "list", "replace the list by its running totals (the i-th number becomes the sum of the numbers "
     "up to and including position i)", "nums = [sum(nums[:i + 1]) for i in range(len(nums))]", (), "window"),
    ("differences", "list", "replace the list by the differences between neighbours (each number minus the one before "
     "it; the result has one number fewer, or none)", "nums = [b - a for a, b in zip(nums, nums[1:])]", (), "window"),
    ("pair_sums", "list", "replace the list by the sums of neighbouring pairs (the first plus the second, the second "
     "plus the third, ...; one number fewer, or none)", "nums = [a + b for a, b in zip(nums, nums[1:])]", (), "window"),
    ("add_position", "list", "add to every number its position in the list (starting at 0)",
     "nums = [x + i for i, x in enumerate(nums)]", (), "arith"),
    ("clamp", "list", "clamp every number into the range from 0 to {k} (below 0 becomes 0, above {k} becomes {k})",
     "nums = [min(max(x, 0), {k}) for x in nums]", (5, 9), "sign"),
])
LIST_ENDS = _ops("list", [
    ("sum", "int", "return the sum of the numbers (0 if there are none)", "return sum(nums)"),
    ("product", "int", "return the product of the numbers (1 if there are none)",
     "product = 1\nfor x in nums:\n    product *= x\nreturn product"),
    ("largest", "int", "return the largest number (0 if there are none)", "return max(nums, default=0)"),
    ("smallest", "int", "return the smallest number (0 if there are none)", "return min(nums, default=0)"),
    ("count", "int", "return how many numbers there are", "return len(nums)"),
    ("distinct", "int", "return how many different numbers there are", "return len(set(nums))"),
    ("alternating", "int", "return the alternating sum: the first number minus the second plus the third, and so on "
     "(0 if there are none)", "return sum(x if i % 2 == 0 else -x for i, x in enumerate(nums))"),
    ("spread", "int", "return the largest number minus the smallest (0 if there are none)",
     "return max(nums) - min(nums) if nums else 0"),
    ("list", "list", "return the resulting list", "return nums"),
    ("counts", "dict", "return a dictionary that maps each number to how many times it occurs",
     "return {x: nums.count(x) for x in nums}"),
])

# Text steps: `text` is words separated by single spaces; a word step splits on whitespace and joins with single spaces.
TEXT_STEPS = _ops("text", [
    ("lower", "text", "convert the text to lower case", "text = text.lower()", (), "case"),
    ("upper", "text", "convert the text to upper case", "text = text.upper()", (), "case"),
    ("swapcase", "text", "swap the case of every letter", "text = text.swapcase()", (), "case"),
    ("capitalize", "text", "capitalize every word (its first letter upper case, the rest lower case)",
     "text = ' '.join(w.capitalize() for w in text.split())", (), "case"),
    ("reverse_text", "text", "reverse the text character by character", "text = text[::-1]", (), "order"),
    ("reverse_words", "text", "reverse the order of the words", "text = ' '.join(text.split()[::-1])", (), "order"),
    ("sort_words", "text", "sort the words alphabetically, ignoring case (words equal when ignoring case keep their "
     "order)", "text = ' '.join(sorted(text.split(), key=str.lower))", (), "order"),
    ("drop_vowels", "text", "remove every vowel (a, e, i, o, u, in either case)",
     "text = ''.join(c for c in text if c.lower() not in 'aeiou')", (), "letters"),
    ("long_words", "text", "keep only the words longer than {k} characters",
     "text = ' '.join(w for w in text.split() if len(w) > {k})", (3, 4), "words"),
    ("short_words", "text", "keep only the words of at most {k} characters",
     "text = ' '.join(w for w in text.split() if len(w) <= {k})", (4, 5), "words"),
    ("unique_words", "text", "remove repeated words, keeping the first occurrence of each (words that differ in case "
     "are different)", "text = ' '.join(dict.fromkeys(text.split()))", (), "words"),
    ("first_words", "text", "keep only the first {k} words", "text = ' '.join(text.split()[:{k}])", (2, 3), "slice"),
    ("replace", "text", "replace every letter '{k[0]}' with '{k[1]}' (lower case only)", "text = text.replace('{k[0]}', '{k[1]}')",
     (("o", "0"), ("e", "3"), ("s", "z")), "letters"),
])
TEXT_ENDS = _ops("text", [
    ("vowels", "int", "return how many vowels (a, e, i, o, u, in either case) it contains",
     "return sum(c.lower() in 'aeiou' for c in text)"),
    ("length", "int", "return its length in characters", "return len(text)"),
    ("words", "int", "return how many words it has", "return len(text.split())"),
    ("longest", "int", "return the length of its longest word (0 if there are none)",
     "return max((len(w) for w in text.split()), default=0)"),
    ("text", "text", "return the resulting text", "return text"),
    ("word_list", "list", "return the list of its words", "return text.split()"),
    ("initials", "text", "return the first character of every word, joined into one string",
     "return ''.join(w[0] for w in text.split())"),
    ("word_lengths", "dict", "return a dictionary that maps each word to its length", "return {w: len(w) for w in text.split()}"),
    ("letter_counts", "dict", "return a dictionary that maps each character other than a space to how many times it "
     "occurs", "return {c: text.count(c) for c in text if c != ' '}"),
])
FAMILIES = {"list": (LIST_STEPS, LIST_ENDS), "text": (TEXT_STEPS, TEXT_ENDS)}
SIGNATURES = {"list": ("transform", "nums: list[int]", "nums"), "text": ("process", "text: str", "text")}
RETURNS = {"int": "int", "list": {"list": "list[int]", "text": "list[str]"}, "text": "str",
           "dict": {"list": "dict[int, int]", "text": "dict[str, int]"}}
WORDS = ("apple", "Bridge", "cloud", "dragon", "Echo", "forest", "green", "harbor", "island", "jungle", "kettle", "lemon",
         "Mountain", "night", "ocean", "pepper", "quartz", "river", "stone", "Tiger", "umbrella", "velvet", "window", "yellow",
         "zebra", "cat", "dog", "sky", "sun", "tree", "bird", "fish", "moon", "star", "rock", "wind")


def split_of(composition: tuple[str, ...], shares: dict[str, float]) -> str:
    """The split a composition belongs to, from a hash of its names alone: the same composition is always in one
    split, whatever its parameters or the order in which tasks are drawn."""
    digest = hashlib.sha256(("evolab-tasks/" + "/".join(composition)).encode()).hexdigest()
    point = int(digest[:12], 16) / 16**12
    edge = 0.0
    for split in ("test", "dev"):
        edge += shares[split]
        if point < edge:
            return split
    return "train"


def compositions(family: str, steps: int) -> list[tuple[str, ...]]:
    """Every sequence of `steps` steps of distinct groups, then an end, of a family (the family's name first)."""
    ops, ends = FAMILIES[family]
    chains = [c for c in permutations(sorted(ops), steps) if len({ops[name].group for name in c}) == steps]
    return [(family, *chain, end) for chain in chains for end in sorted(ends)]


def _random_input(family: str, rng: random.Random) -> Any:
    if family == "list":
        return [rng.randint(-6, 15) for _ in range(rng.randint(0, 8))]
    return " ".join(rng.choice(WORDS) if rng.random() < 0.8 else rng.choice(WORDS).upper() for _ in range(rng.randint(0, 7)))


def fill(template: str, k: Any) -> str:
    """A step's text with its parameter: `{k}`, or `{k[0]}` / `{k[1]}` for a pair (code braces stay as they are)."""
    if isinstance(k, (tuple, list)):
        return template.replace("{k[0]}", str(k[0])).replace("{k[1]}", str(k[1]))
    return template.replace("{k}", str(k))


def _indent(code: str, spaces: int = 4) -> str:
    return "".join(" " * spaces + line + "\n" for line in code.splitlines())


def make_task(task_id: str, composition: tuple[str, ...], rng: random.Random, examples: int, tests: int = 8) -> Problem:
    """A HumanEval-format problem for `composition`: prompt (signature, every step in the docstring, `examples`
    doctest examples), canonical_solution, entry_point, test (a check function of exact asserts, an empty input
    among them) and the composition with its parameters."""
    family, *names, end = composition
    ops, ends = FAMILIES[family]
    chosen = [(ops[name], rng.choice(ops[name].params) if ops[name].params else None) for name in names]
    chosen.append((ends[end], None))
    name, argument, variable = SIGNATURES[family]
    returns = RETURNS[ends[end].gives]
    returns = returns[family] if isinstance(returns, dict) else returns
    body = "".join(_indent(fill(op.code, k)) for op, k in chosen)
    namespace: dict[str, Any] = {}
    exec(f"def {name}({argument}):\n{body}", namespace)  # our own reference, built just above
    solve = namespace[name]
    inputs = [[] if family == "list" else ""]
    while len(inputs) < tests + examples:
        value = _random_input(family, rng)
        if value not in inputs:
            inputs.append(value)
    shown, checked = inputs[tests:], inputs[:tests]
    subject = "a list of integers" if family == "list" else "a text of words separated by single spaces"
    lines = [f"Given {subject}, do these steps in order:"]
    lines += [f"{i}. {fill(op.says, k)}." for i, (op, k) in enumerate(chosen, start=1)]
    for value in shown:
        lines += ["", f">>> {name}({value!r})", repr(solve(value))]
    docstring = "\n".join(f"    {line}" if line else "" for line in lines)
    prompt = f'def {name}({argument}) -> {returns}:\n    """{docstring.lstrip()}\n    """\n'
    test = "def check(candidate):\n" + "".join(f"    assert candidate({v!r}) == {solve(v)!r}\n" for v in checked)
    return Problem(task_id, prompt, name, body,
                   more={"test": test, "composition": list(composition), "parameters": [k for _, k in chosen[:-1]]})


def as_seed(task: Problem) -> Record:
    """A training-pool task as a seed record: the chat request it is evaluated with, its own asserts, the reference."""
    test, composition = task.more["test"], task.more["composition"]
    asserts = [line.strip().replace("candidate(", f"{task.entry_point}(", 1) for line in test.splitlines()[1:]]
    return {"id": task.task_id, "instruction": CHAT_INSTRUCTION.format(prompt=task.prompt.strip()), "input": "",
            "output": "", "reference": task.prompt + task.canonical_solution, "tests": asserts, "entry_point": task.entry_point,
            "composition": composition}


def build(sizes: dict[str, int], steps: int, examples: int, shares: dict[str, float], seed: int = 0) -> dict[str, list[Problem]]:
    """Tasks per split: compositions of `steps` steps and an end from both families (lists 3 : text 2), each
    composition at most once, drawn in a seeded order within its split."""
    rng = random.Random(seed)
    pools: dict[str, list[tuple[str, ...]]] = {split: [] for split in SPLITS}
    for family in FAMILIES:
        for composition in compositions(family, steps):
            pools[split_of(composition, shares)].append(composition)
    out = {}
    for split in SPLITS:
        by_family = {f: [c for c in pools[split] if c[0] == f] for f in FAMILIES}
        for candidates in by_family.values():
            rng.shuffle(candidates)
        lists = round(sizes[split] * 3 / 5)
        chosen = by_family["list"][:lists] + by_family["text"][:sizes[split] - lists]
        rng.shuffle(chosen)
        prefix = {"train": "EvolabTasksTrain", "dev": "EvolabTasksDev", "test": "EvolabTasks"}[split]
        out[split] = [make_task(f"{prefix}/{i}", c, rng, examples) for i, c in enumerate(chosen)]
    return out


# The committed suite (evolab/data/tasks/): its settings, chosen on the dev split (reports/positive_control_plan.md).
SUITE = {"sizes": {"train": 600, "dev": 100, "test": 200}, "steps": 2, "examples": 0,
         "shares": {"test": 0.25, "dev": 0.1}, "seed": 0}


def write_suite(folder: Path = FOLDER, **settings: Any) -> dict[str, list[Problem]]:
    suite = build(**{**SUITE, **settings})
    write_jsonl([as_seed(t) for t in suite["train"]], folder / "train.jsonl")
    for split in ("dev", "test"):
        write_rows(suite[split], folder / f"{split}.jsonl")
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=FOLDER)
    parser.add_argument("--steps", type=int, default=SUITE["steps"], help="list or text steps before the end step")
    parser.add_argument("--examples", type=int, default=SUITE["examples"], help="doctest examples in each docstring")
    args = parser.parse_args()
    suite = write_suite(args.out, steps=args.steps, examples=args.examples)
    print({split: len(tasks) for split, tasks in suite.items()}, "->", args.out)


if __name__ == "__main__":
    main()
