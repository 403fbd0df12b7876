"""The experiment's DAG as DVC declares it (dvc.yaml with the repo's params.yaml): each stage's command, outputs and
metrics files, read from DVC itself, so that the plan, the log stage and the benchmarks keep no list of their own."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def stages(repo: Path) -> list[dict[str, Any]]:
    """The DAG's stages in the order DVC runs them: name, command, outputs and metrics files (dvc.yaml with the
    repo's params.yaml)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        order = reversed(list(nx.topological_sort(dvc_repo.index.graph)))  # DVC's edges point at dependencies
        rel = lambda out: str(Path(out.fs_path).relative_to(repo.resolve()))  # noqa: E731
        return [{"name": s.name, "cmd": s.cmd, "outs": [rel(o) for o in s.outs if not o.metric],
                 "metrics": [rel(o) for o in s.outs if o.metric]}
                for s in order if getattr(s, "cmd", None) and Path(s.dvcfile.path).name == "dvc.yaml"
                and Path(s.dvcfile.path).resolve().parent == repo.resolve()]


def metric_files(repo: Path = Path(".")) -> list[str]:
    """Every JSON metrics file the DAG's stages declare (`metrics:` in dvc.yaml), in the order they run."""
    return [path for stage in stages(repo) for path in stage["metrics"] if path.endswith(".json")]
