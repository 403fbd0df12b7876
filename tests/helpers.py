"""The one home of what the tests share: where the project is, DVC and the stages run as a user runs them,
parameters composed as `dvc exp run` composes them and typed as load() types them, and the import reader of the layout tests."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")


def copy_project(target: Path) -> Path:
    """The repository's files (tracked, or new and not ignored) copied into `target`: those present under ROOT, which
    under mutmut (scripts/mutation.py) is its mutants/ folder, holding the mutated package and `also_copy`."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=top,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def compose_params(overrides: list[str], output: Path, conf_dir: Path = ROOT / "conf") -> dict[str, Any]:
    """conf/ composed with `overrides` into `output` (a params.yaml), as `dvc exp run -S ...` composes it."""
    from evolab.core.config import compose

    return compose(overrides, conf_dir=conf_dir, output=output)


@lru_cache(maxsize=None)
def default_experiment() -> Any:
    """The committed params.yaml (the default composition) as load() types it."""
    import yaml

    from evolab.core.config import resolve

    return resolve(yaml.safe_load((ROOT / "params.yaml").read_text()), ROOT / "params.yaml")


def settings(section: str, **changes: Any) -> Any:
    """One section of the default experiment, typed as load() gives it to a stage, with `changes`, for a test to pass
    to a library function. A change to a nested section is merged into it (`settings("decontamination", ngram={"n":
    2})`); any other value replaces the default (a dict of heuristics replaces the method's)."""
    from dataclasses import is_dataclass

    from omegaconf import OmegaConf

    default = getattr(default_experiment(), section)
    node = OmegaConf.structured(default)
    for key, value in changes.items():
        nested = isinstance(value, dict) and is_dataclass(getattr(default, key, None))
        node[key] = OmegaConf.merge(node[key], value) if nested else value
    return OmegaConf.to_object(node)


def item(**fields: Any) -> Any:
    """A training item (evolab.core.records.Item) with the fields given; the others empty, id `item`, round 0, part code_evol.
    A field that is not one of Item's own goes to its `more`."""
    from evolab.core.records import Item

    return Item.of({"id": "item", "round": 0, "part": "code_evol", "instruction": "", "input": "", "output": "", **fields})


def scratch_params(folder: Path, overrides: list[str]) -> dict[str, Any]:
    """params.yaml in a scratch folder, for running a stage module there (the seed file named by its absolute path)."""
    return compose_params([f"seed_data.path={ROOT / 'evolab/data/seeds.jsonl'}", *overrides], folder / "params.yaml")


def with_dvc_on_path(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with this interpreter's bin folder first on PATH: DVC's queue starts its workers as a
    plain `dvc` (and the stages as `python`), which must be this environment's, activated or not."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def dvc(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([DVC, *args], cwd=repo, capture_output=True, text=True, env=with_dvc_on_path(env))
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def ran(result: subprocess.CompletedProcess) -> set[str]:
    """The stages a `dvc exp run` or `dvc repro` ran (not the ones it restored)."""
    return set(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))


def run_stage(repo: Path, module: str, *args: str, env: dict[str, str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    """`python -m stages.MODULE ARGS` in `repo`, as dvc.yaml runs it (the repo's params.yaml, its data/)."""
    environment = {**os.environ, "PYTHONPATH": str(repo if (repo / "stages").is_dir() else ROOT), **(env or {})}
    result = subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=repo, capture_output=True, text=True,
                            env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"stages.{module} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def imports(path: Path) -> set[str]:
    """Every module name a Python file imports, anywhere in its body (`from a import b` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def tiny_student(model: Path, embedder: Path) -> list[str]:
    """The overrides of a mechanics test's smallest models: conftest's tiny_model as the student (a two-layer random
    Qwen2 through transformers, 16 tokens per answer), its tiny_embedder for the similarity stage, the first 4 dev
    problems, and no embedding check in decontamination (a sentence model over 288 benchmark prompts, half a minute
    per experiment). The real models' numbers are tested in tests/test_decontamination.py, tests/test_similarity.py
    and tests/test_end_to_end.py."""
    return [f"model.hf={model}", "eval.backend=transformers", "eval.max_tokens=16", "evol_stop.limit=4",
            f"similarity.model={embedder}", "decontamination.embedding.threshold=null"]


def scripted(teacher_url: str) -> list[str]:
    """The overrides that make the scripted teacher (evolab/testing/teacher.py) the experiment's teacher."""
    return ["teacher=openai", f"teacher.base_url={teacher_url}", "teacher.model=scripted", "teacher.backoff=0.01",
            "teacher.concurrency=4"]


def mlflow_runs(project: Path):
    """The project's MLflow store through a client of its own, leaving mlflow's global tracking URI alone."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("evolab")
    return client, (client.search_runs([experiment.experiment_id]) if experiment else [])
