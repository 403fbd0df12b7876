"""Real source code as seed material: OSS-Instruct's random snippets and WaveCoder's (docstring, function)
pairs. Offline default: the Python standard library of the running interpreter (real, open code that
every machine has; PSF licence); any directory of .py files works the same way, and so does a text
column of a Hugging Face dataset (by hub name when online or cached, or a local dataset folder)."""
from __future__ import annotations

import ast
import random
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

from evolab.core.errors import StageError
from evolab.core.schema import CodeSource


@dataclass(frozen=True)
class Snippet:
    """OSS-Instruct's seed: lines of real code, and where they are (`FILE:LINE`)."""
    id: str
    code: str
    source: str


@dataclass(frozen=True)
class FunctionPair:
    """WaveCoder's raw item: a function's docstring and its code without it, and where it is (`FILE:LINE`)."""
    id: str
    docstring: str
    code: str
    source: str


SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def python_files(root: str | Path) -> list[Path]:
    """Sorted .py files under root, without tests and installed third-party packages."""
    root = Path(root) if str(root) != "stdlib" else stdlib_root()
    if not root.is_dir():
        raise StageError(f"The code source '{root}' is not a directory: set it to a folder of .py files, or 'stdlib'.")
    files = sorted(p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts[:-1]))
    if not files:
        raise StageError(f"No .py files under '{root}'.")
    return files


def read_source(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


class Corpus(Protocol):
    """Source documents by index, read on demand."""

    def __len__(self) -> int: ...
    def name(self, i: int) -> str: ...
    def text(self, i: int) -> str | None: ...


class Files:
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return str(self.paths[i])

    def text(self, i: int) -> str | None:
        return read_source(self.paths[i])


class DatasetColumn:
    def __init__(self, dataset: Any, column: str, label: str) -> None:
        self.dataset, self.column, self.label = dataset, column, label

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, i: int) -> str:
        return f"{self.label}#{i}"

    def text(self, i: int) -> str | None:
        value = self.dataset[i][self.column]
        return value if isinstance(value, str) else None


def corpus(source: CodeSource) -> Corpus:
    """source.hf_dataset (with hf_split and hf_column) when set, else the .py files under source.path."""
    name = source.hf_dataset
    if not name:
        return Files(python_files(source.path))
    from datasets import load_dataset

    try:
        dataset = load_dataset(name, split=source.hf_split)
    except Exception as err:  # noqa: BLE001 - offline, a hub name fails in several ways
        raise StageError(f"Cannot load the dataset '{name}' ({type(err).__name__}: {str(err)[:200]}): offline, give a "
                         "local dataset folder or one already in the Hugging Face cache, or unset method.source.hf_dataset "
                         "to use method.source.path (a folder of .py files, or stdlib).") from err
    if source.hf_column not in dataset.column_names:
        raise StageError(f"The dataset '{name}' has no column '{source.hf_column}' (it has {dataset.column_names}): "
                         "set method.source.hf_column to the one holding the code.")
    return DatasetColumn(dataset, source.hf_column, name)


def snippets(docs: Corpus, count: int, seed: int, min_lines: int = 1, max_lines: int = 15) -> list[Snippet]:
    """OSS-Instruct's seed: from a random document, a uniformly random start line and 1-15 consecutive lines
    (Magicoder's extract_seed_code); blank-only snippets are drawn again."""
    rng = random.Random(seed)
    seeds: list[Snippet] = []
    while len(seeds) < count:
        doc = rng.randrange(len(docs))
        lines = (docs.text(doc) or "").splitlines(keepends=True)
        if not lines:
            continue
        start = rng.randrange(len(lines))
        code = "".join(lines[start:start + rng.randint(min_lines, max_lines)])
        if code.strip():
            seeds.append(Snippet(f"oss-{len(seeds):05d}", code, f"{docs.name(doc)}:{start + 1}"))
    return seeds


def function_pairs(docs: Corpus, min_lines: int = 3, max_lines: int = 60) -> Iterator[FunctionPair]:
    """(docstring, function) pairs, CodeSearchNet-like: top-level functions and methods with a docstring,
    the code without its docstring, neither too short nor too long."""
    for i in range(len(docs)):
        source = docs.text(i) or ""
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not (doc := ast.get_docstring(node)):
                continue
            docstring_node = node.body[0]
            if len(node.body) < 2 or docstring_node.lineno == node.lineno:  # nothing but a docstring, or a one-liner
                continue
            kept = lines[node.lineno - 1:docstring_node.lineno - 1] + lines[docstring_node.end_lineno:node.end_lineno]
            if min_lines <= len(kept) <= max_lines:
                where = f"{docs.name(i)}:{node.lineno}"
                yield FunctionPair(where, doc, textwrap.dedent("\n".join(kept)), where)
