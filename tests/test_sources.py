"""Seed material from real code: the interpreter's standard library, as OSS-Instruct and WaveCoder use it."""
from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from evolab.core.errors import StageError
from evolab.core.schema import CodeSource
from evolab.methods.sources import Files, corpus, function_pairs, python_files, snippets


@pytest.fixture(scope="module")
def stdlib():
    return python_files("stdlib")


def test_the_standard_library_is_found_without_its_tests(stdlib):
    assert {"functools.py", "textwrap.py"} <= {p.name for p in stdlib}
    assert len(stdlib) > 300
    assert not any({"test", "tests", "site-packages"} & set(p.parts) for p in stdlib)


def test_snippets_are_one_to_fifteen_real_consecutive_lines_and_reproducible(stdlib):
    seeds = snippets(Files(stdlib), 50, seed=976)
    assert seeds == snippets(Files(stdlib), 50, seed=976) and seeds != snippets(Files(stdlib), 50, seed=977)
    for seed in seeds:
        path, line = seed.source.rsplit(":", 1)
        lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
        assert 1 <= len(seed.code.splitlines()) <= 15 and seed.code.strip()
        assert "".join(lines[int(line) - 1:]).startswith(seed.code)  # verbatim from the file


def test_function_pairs_are_the_docstring_and_the_code_without_it(stdlib):
    textwrap_py = [p for p in stdlib if p.name == "textwrap.py"]
    pairs = {r.code.splitlines()[0]: r for r in function_pairs(Files(textwrap_py))}
    dedent = pairs["def dedent(text):"]
    assert dedent.docstring.startswith("Remove any common leading whitespace")
    assert '"""' not in dedent.code and "Remove any common" not in dedent.code
    for pair in pairs.values():  # methods too, dedented to valid code
        ast.parse(pair.code)
        assert 3 <= len(pair.code.splitlines()) <= 60


def test_a_missing_source_folder_is_refused_with_the_fix(tmp_path):
    with pytest.raises(StageError, match="not a directory"):
        python_files(tmp_path / "nope")
    with pytest.raises(StageError, match="No .py files"):
        python_files(tmp_path)


def test_a_dataset_column_is_a_source_too_and_its_mistakes_are_named(tmp_path):
    """A Hugging Face dataset of code (here a local dataset folder; a hub name works the same when online)."""
    import json

    folder = tmp_path / "code"
    folder.mkdir()
    textwrap_py = (Path(ast.__file__).parent / "textwrap.py").read_text()
    rows = [{"content": textwrap_py, "lang": "python"}, {"content": "x = 1\ny = 2\n", "lang": "python"}]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = CodeSource(path="stdlib", hf_dataset=str(folder), hf_split="train", hf_column="content", min_lines=1, max_lines=15)
    docs = corpus(source)
    assert len(docs) == 2 and docs.text(1) == "x = 1\ny = 2\n"
    for seed in snippets(docs, 20, seed=976):
        name, line = seed.source.rsplit(":", 1)
        assert docs.text(int(name.rsplit("#", 1)[1])).splitlines(keepends=True)[int(line) - 1:][0] in seed.code
    assert "def dedent(text):" in {p.code.splitlines()[0] for p in function_pairs(docs)}
    with pytest.raises(StageError, match="has no column 'code'.*method.source.hf_column"):
        corpus(replace(source, hf_column="code"))
    with pytest.raises(StageError, match="Cannot load the dataset"):
        corpus(replace(source, hf_dataset=str(tmp_path / "missing")))
