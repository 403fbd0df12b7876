"""The layout holds: the library never imports the stages, its subpackages import each other without a
cycle, and the code passes the linter (ruff, configured in pyproject.toml)."""
from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter

from helpers import ROOT, imports


def subpackage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "evolab" and len(parts) > 1 and (ROOT / "evolab" / parts[1]).is_dir() else None


def test_the_library_never_imports_the_stages():
    offenders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "evolab").rglob("*.py")
                       if any(name == "stages" or name.startswith("stages.") for name in imports(p)))
    assert not offenders, f"library modules importing stages: {offenders}"


def test_scripts_and_benchmarks_use_the_library_not_the_stages():
    offenders = sorted(str(p.relative_to(ROOT)) for folder in ("scripts", "benchmarks") for p in (ROOT / folder).rglob("*.py")
                       if any(name == "stages" or name.startswith("stages.") for name in imports(p)))
    assert not offenders, f"scripts or benchmarks importing stages: {offenders}"


def test_every_stage_is_io_and_one_call_into_the_library():
    """A stage's main() reads its inputs, calls the library and writes its outputs: at most 25 lines."""
    long = {}
    for path in sorted((ROOT / "stages").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main" and node.end_lineno - node.lineno + 1 > 25:
                long[path.name] = node.end_lineno - node.lineno + 1
    assert not long, f"stages whose main() holds library logic (lines): {long}"


def test_train_template_auto_is_decided_in_one_function():
    """template_kind (evolab/core/prompts.py) decides `train.template: auto`; only config.resolve calls it, once, when
    the parameters are loaded. Everything else reads train.template."""
    callers = []
    for folder in ("evolab", "stages", "scripts", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
                callers += [(str(path.relative_to(ROOT)), function.name) for call in ast.walk(function)
                            if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None)) == "template_kind"]
    assert callers == [("evolab/core/config.py", "resolve")]


def test_subpackages_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "evolab").rglob("*.py"):
        if len(path.relative_to(ROOT / "evolab").parts) < 2:
            continue  # evolab/__init__.py
        own = path.relative_to(ROOT / "evolab").parts[0]
        graph.setdefault(own, set()).update(p for name in imports(path) if (p := subpackage(name)) and p != own)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"subpackages import each other in a circle: {err.args[1]}") from None
    assert order.index("core") == 0 and set(order) >= {"backends", "methods", "curation", "training", "evaluation", "reporting"}


def test_the_code_passes_ruff():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
