"""The layout holds: the library never imports the stages, its subpackages import each other without a
cycle, and the code passes the linter (ruff, configured in pyproject.toml)."""
from __future__ import annotations

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
