"""Tracking: how an experiment is named and recorded in MLflow (its params, metrics named as in
`dvc exp show`, loss curve, per-problem results), once per distinct experiment, complete or not at all."""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from evolab.core import paths
from evolab.core.cache import cache_key
from evolab.core.config import plain
from evolab.core.schema import Experiment
from evolab.core.stage import stage_runs
from evolab.reporting.dag import metric_files


def project_root() -> Path:
    """The project's workspace, also from a queued experiment, which DVC runs in a copy under
    <project>/.dvc/tmp/exps/ and deletes afterwards: its MLflow runs belong in the project's store."""
    cwd = Path.cwd().resolve()
    return Path(*cwd.parts[:cwd.parts.index(".dvc")]) if ".dvc" in cwd.parts else cwd


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


RESULTS = {Path(metrics).stem: results for _, results, metrics in paths.EVAL_MODES.values()}  # metric prefix -> folder


def per_problem_path(prefix: str) -> str:
    """Where the per-problem results behind a metric prefix are (`eval`, `baseline`, `dev`,
    `controls.<name>.eval`): the report's paired tests read them from DVC or from MLflow."""
    if prefix.startswith("controls."):
        return f"{paths.control(prefix.split('.')[1])['results']}/per_problem.jsonl"
    return f"{RESULTS[prefix]}/per_problem.jsonl"


def per_problem_files(params: Experiment) -> list[str]:
    """This experiment's per-problem results, as per_problem_path names them."""
    prefixes = list(RESULTS) + [f"controls.{name}.eval" for name in params.control_runs]
    return [path for prefix in prefixes if Path(path := per_problem_path(prefix)).exists()]


def metric_name(path: str, key: str) -> str:
    """One name per metric in MLflow and in the report: metrics/evolve/r1.json + kept -> evolve.r1.kept."""
    return ".".join([*Path(path).with_suffix("").parts[1:], key]).replace("@", "_at_")


def numeric(tree: dict[str, Any], path: str) -> dict[str, float]:
    return {metric_name(path, key): float(value) for key, value in flatten(tree).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def collect_metrics() -> dict[str, float]:
    """The numeric metrics of this experiment, from every metrics file dvc.yaml declares (evolab/reporting/dag.py)."""
    metrics: dict[str, float] = {}
    for path in metric_files():
        metrics.update(numeric(json.loads(Path(path).read_text()), path))
    return metrics


def loss_curve(path: str | Path = paths.TRAIN_LOSS) -> list[tuple[int, float]]:
    with open(path) as handle:
        _, *rows = csv.reader(handle)  # the header: step, loss
        return [(int(step), float(loss)) for step, loss in rows]


def artifacts_beside(store: Path) -> str:
    return (store.parent / "mlartifacts").as_uri()


def create_store(store: Path) -> None:
    """A new SQLite store made whole or not at all: MLflow creates its tables in a series of migrations, and a
    log killed among them left a store that every later log failed on (`table ... already exists`). It is
    made under another name, with the `evolab` experiment (artifacts beside the store, not in the working
    directory: a queued experiment's is deleted), then linked into place; a concurrent log that linked
    first wins and this copy is dropped."""
    from mlflow import MlflowClient

    if store.exists():
        return
    partial = store.with_name(f".{store.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    MlflowClient(f"sqlite:///{partial}").create_experiment("evolab", artifact_location=artifacts_beside(store))
    try:
        os.link(partial, store)
    except FileExistsError:
        pass
    partial.unlink()


# The experiment type MLflow 3's UI opens on: model training (its runs), not GenAI apps (its traces).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def training_set(path: str | Path) -> Any:
    """The training data as an MLflow dataset, named by its file and identified by MLflow's digest of its rows,
    so that runs can be grouped by the data they trained on. Nested fields go in as JSON text: MLflow's digest
    (mlflow 3.17, compute_pandas_digest) gives rows that differ only inside a dict the same digest."""
    import mlflow.data
    import pandas as pd

    from evolab.core.records import read_jsonl

    rows = [{k: v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v, sort_keys=True) for k, v in r.items()}
            for r in read_jsonl(path)]
    return mlflow.data.from_pandas(pd.DataFrame(rows), source=str(path), name=Path(path).name)


def experiment_start() -> float | None:
    """When this experiment's first stage started (seconds since the epoch): the earliest start among the stage runs
    recorded since the last log stage (paths.STAGE_TIMES); None when none ran (DVC restored every result)."""
    starts: list[float] = []
    for run in stage_runs():
        starts = [] if run["cmd"].startswith("python -m stages.log") else [*starts, run["start"]]
    return min(starts, default=None)


def log_experiment(params: Experiment, metrics: dict[str, float], uri: str,
                   curve: list[tuple[int, float]] = ()) -> tuple[str, bool]:
    """Log once per distinct (params, metrics); returns (run id, whether a new run was created). The key
    that marks the experiment as logged is set last; a run that a crash or kill left without it (tagged
    `evolab_pending` only) is deleted and logged again whole."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        store = Path(uri.removeprefix("sqlite:///"))
        create_store(store)
        if mlflow.get_experiment_by_name("evolab") is None:  # a store someone else made
            mlflow.create_experiment("evolab", artifact_location=artifacts_beside(store))
    experiment = mlflow.set_experiment("evolab")
    MlflowClient().set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    values = plain(params)
    key = cache_key(params=values, metrics=metrics)
    found = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.evolab_key = '{key}'",
                               output_format="list")
    if found:
        return found[0].info.run_id, False
    for unfinished in mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.evolab_pending = '{key}'",
                                         output_format="list"):
        MlflowClient().delete_run(unfinished.info.run_id)  # a log killed half-way: replaced by this one
    name = os.environ.get("DVC_EXP_NAME") or f"{params.method.name}-r{params.rounds}-{params.model.name}"
    # The run spans the experiment (its first stage's start to this log), not the log stage alone.
    started = experiment_start()
    created = MlflowClient().create_run(experiment.experiment_id, run_name=name, tags={"evolab_pending": key},
                                        start_time=int(1000 * started) if started else None)
    with mlflow.start_run(run_id=created.info.run_id) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(values).items()})
        mlflow.log_metrics(metrics)
        if Path(paths.TRAIN).exists():
            mlflow.log_input(training_set(paths.TRAIN), context="training")
        timestamp = int(time.time() * 1000)
        points = [Metric("train.loss", loss, timestamp, step) for step, loss in curve]
        for start in range(0, len(points), 1000):  # MLflow takes at most 1000 metrics per batch
            MlflowClient().log_batch(run.info.run_id, metrics=points[start:start + 1000])
        mlflow.log_artifact("params.yaml")
        mlflow.log_artifacts("metrics", artifact_path="metrics")
        for artifact in (paths.SIMILARITY, paths.DECONTAMINATION, paths.VERIFICATION):
            if Path(artifact).exists():
                mlflow.log_artifact(artifact, artifact_path="results")
        for artifact in per_problem_files(params):
            mlflow.log_artifact(artifact, artifact_path=str(Path(artifact).parent))
        mlflow.set_tag("evolab_key", key)  # last: the experiment counts as logged only once all of it is in
    return run.info.run_id, True
