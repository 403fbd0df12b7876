"""A stale cached result is a bug. Each stage depends on the subpackages of evolab it imports (its module
and everything that imports in turn, function-level imports included), whole: a backend or method that
is loaded by name (evolab/backends, evolab/methods) is covered with its package. Checked for every
method and with the controls on; and editing a library file makes `dvc status` mark exactly the stages
that import its subpackage."""
from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
from helpers import DVC, ROOT, compose_params, copy_project, imports

SETUPS = {  # every stage kind at least once: generators, combine, controls
    "code_evol": ["controls=paper"], "oss_instruct": ["method=oss_instruct"], "wavecoder": ["method=wavecoder"],
    "magicoder_s": ["method=magicoder_s"],
}


def module_file(name: str) -> Path | None:
    for path in (ROOT / (name.replace(".", "/") + ".py"), ROOT / name.replace(".", "/") / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported(path: Path) -> set[Path]:
    """The project files that `path` imports anywhere in its body."""
    return {file for name in imports(path) if name.split(".")[0] in ("evolab", "stages") and (file := module_file(name))}


def closure(module: str) -> set[Path]:
    seen: set[Path] = set()
    todo = [module_file(module)]
    while todo:
        if (path := todo.pop()) not in seen:
            seen.add(path)
            todo += imported(path)
    return {p for p in seen if not docstring_only(p)}


def docstring_only(path: Path) -> bool:
    """An __init__.py with nothing but a docstring runs no code a result could depend on."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def entry_module(cmd: str) -> str:
    words = cmd.split()
    return words[words.index("-m") + 1]


def scratch_repo(tmp: Path, overrides: list[str]) -> Path:
    """The project's dvc.yaml files and code with params.yaml composed for `overrides`, as a DVC repo."""
    repo = copy_project(tmp / "repo")
    compose_params(overrides, repo / "params.yaml")
    subprocess.run([DVC, "init", "--no-scm", "-f", "-q"], cwd=repo, check=True)
    return repo


def stages(repo: Path) -> dict[str, dict]:
    """name -> {module, deps (relative paths), outs} as DVC resolves them for the repo's params."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return {stage.name: {"module": entry_module(stage.cmd),
                                   "deps": [str(Path(d.fs_path).relative_to(repo)) for d in stage.deps],
                                   "outs": [str(Path(o.fs_path).relative_to(repo)) for o in stage.outs]}
                for stage in dvc_repo.index.stages}


def unit(path: Path) -> str:
    """What a stage must depend on for this file: its evolab subpackage, or the file itself (a stage script)."""
    relative = path.relative_to(ROOT)
    return str(relative.parent) if relative.parts[0] == "evolab" and len(relative.parts) > 2 else str(relative)


def required(module: str) -> set[str]:
    return {unit(p) for p in closure(module)}


def covered(needed: str, deps: list[str]) -> bool:
    return any(needed == dep or needed.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("setup", SETUPS)
def test_every_stage_depends_on_all_the_code_it_imports(tmp_path, setup):
    found = stages(scratch_repo(tmp_path, SETUPS[setup]))
    missing = {name: sorted(u for u in required(stage["module"]) if not covered(u, stage["deps"])) for name, stage in found.items()}
    missing = {name: files for name, files in missing.items() if files}
    assert not missing, ("add these to the stages' deps in dvc.yaml, or a stage serves stale results when they "
                         "change:\n" + "\n".join(f"{name}: {' '.join(files)}" for name, files in missing.items()))


def test_editing_a_library_file_marks_exactly_the_stages_that_import_it(tmp_path):
    repo = scratch_repo(tmp_path, SETUPS["code_evol"])
    found = stages(repo)
    for stage in found.values():  # stand-in outputs, so that DVC can record the stages without running them
        for out in stage["outs"] + stage["deps"]:
            path = repo / out
            if path.exists() or out.startswith(("evolab/", "stages/")):
                continue
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder").write_text("")
    committed = subprocess.run([DVC, "commit", "-f"], cwd=repo, capture_output=True, text=True)
    assert committed.returncode == 0, committed.stderr
    for library_file in ("evolab/training/sft.py", "evolab/curation/embeddings.py", "evolab/backends/llama_cpp.py"):
        target = repo / library_file
        original = target.read_text()
        target.write_text(original + "\n# an edit\n")
        status = json.loads(subprocess.run([DVC, "status", "--json"], cwd=repo, capture_output=True, text=True,
                                           check=True).stdout or "{}")
        target.write_text(original)
        marked = {name.split(":")[-1] for name, changes in status.items()
                  if any(str(Path(library_file).parent) in change.get("changed deps", {}) for change in changes
                         if isinstance(change, dict))}
        importers = {name for name, stage in found.items() if unit(ROOT / library_file) in required(stage["module"])}
        assert importers, library_file
        assert marked == importers, f"{library_file}: dvc status marks {sorted(marked)}, these import it: {sorted(importers)}"
