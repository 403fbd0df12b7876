"""The experiment's DAG as DVC declares it (dvc.yaml with the repo's params.yaml): each stage's command, outputs and
metrics files, read from DVC itself, so that the plan, the log stage and the benchmarks keep no list of their own."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Stage:
    """A stage of dvc.yaml as DVC resolves it: its name (`evolve@r1`), command, outputs and metrics files."""
    name: str
    cmd: str
    outs: list[str]
    metrics: list[str]


def stages(repo: Path) -> list[Stage]:
    """The DAG's stages in the order DVC runs them (dvc.yaml with the repo's params.yaml)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        order = reversed(list(nx.topological_sort(dvc_repo.index.graph)))  # DVC's edges point at dependencies
        rel = lambda out: str(Path(out.fs_path).relative_to(repo.resolve()))  # noqa: E731
        return [Stage(s.name, s.cmd, [rel(o) for o in s.outs if not o.metric], [rel(o) for o in s.outs if o.metric])
                for s in order if getattr(s, "cmd", None) and Path(s.dvcfile.path).name == "dvc.yaml"
                and Path(s.dvcfile.path).resolve().parent == repo.resolve()]


def metric_files(repo: Path = Path(".")) -> list[str]:
    """Every JSON metrics file the DAG's stages declare (`metrics:` in dvc.yaml), in the order they run."""
    return [path for stage in stages(repo) for path in stage.metrics if path.endswith(".json")]
