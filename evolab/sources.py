"""Real source code as seed material: OSS-Instruct's random snippets and WaveCoder's (docstring, function)
pairs. Offline default: the Python standard library of the running interpreter (real, open code that
every machine has; PSF licence); any directory of .py files works the same way."""
from __future__ import annotations

import ast
import random
import sysconfig
import textwrap
from pathlib import Path
from typing import Iterator

from evolab.datasets import Record
from evolab.errors import StageError

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


def snippets(files: list[Path], count: int, seed: int, min_lines: int = 1, max_lines: int = 15) -> list[Record]:
    """OSS-Instruct's seed: from a random document, a uniformly random start line and 1-15 consecutive lines
    (Magicoder's extract_seed_code); blank-only snippets are drawn again."""
    rng = random.Random(seed)
    seeds: list[Record] = []
    while len(seeds) < count:
        path = rng.choice(files)
        lines = (read_source(path) or "").splitlines(keepends=True)
        if not lines:
            continue
        start = rng.randrange(len(lines))
        code = "".join(lines[start:start + rng.randint(min_lines, max_lines)])
        if code.strip():
            seeds.append({"id": f"oss-{len(seeds):05d}", "seed": code, "source": f"{path}:{start + 1}"})
    return seeds


def function_pairs(files: list[Path], min_lines: int = 3, max_lines: int = 60) -> Iterator[Record]:
    """(docstring, function) pairs, CodeSearchNet-like: top-level functions and methods with a docstring,
    the code without its docstring, neither too short nor too long."""
    for path in files:
        source = read_source(path) or ""
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
                yield {"id": f"{path.stem}:{node.lineno}", "docstring": doc, "code": textwrap.dedent("\n".join(kept)),
                       "source": f"{path}:{node.lineno}"}
