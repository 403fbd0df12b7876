"""The log stage: an experiment counts as logged in MLflow only once all of it is in (under a kill); what the UI
opens on, the training set as a dataset, a tracking server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, default_experiment

LOG = """
import json, sys
import mlflow
from evolab.reporting.tracking import log_experiment
if sys.argv[1] == "kill":  # SIGKILL itself where the artifacts are being written: params and metrics are in
    import os, signal
    mlflow.log_artifacts = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "kill-creating":  # SIGKILL itself among MLflow's migrations of a new store
    import os, signal
    from alembic.ddl.impl import DefaultImpl
    create_table, made = DefaultImpl.create_table, []
    def create_then_die(self, *args, **kwargs):
        made.append(create_table(self, *args, **kwargs))
        if len(made) == 5:
            os.kill(os.getpid(), signal.SIGKILL)
    DefaultImpl.create_table = create_then_die
import os, yaml
from evolab.core.config import resolve
params = resolve(yaml.safe_load(open(os.path.join(os.environ["PYTHONPATH"], "params.yaml"))))  # the default experiment
run_id, new = log_experiment(params, {"eval.humaneval.pass_at_1": float(sys.argv[3])}, sys.argv[2])
print(json.dumps([run_id, new]))
"""


def log(project: Path, mode: str, uri: str | None = None, score: float = 0.5) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOG, mode, uri or f"sqlite:///{project / 'mlflow.db'}", str(score)], cwd=project,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def write_project(project: Path) -> None:
    """What the log stage reads: params, an eval metric, one per-problem file."""
    (project / "metrics").mkdir(parents=True)
    (project / "params.yaml").write_text("rounds: 1\n")
    (project / "metrics/eval.json").write_text(json.dumps({"humaneval": {"pass@1": 0.5}}))
    (project / "results/tuned").mkdir(parents=True)
    (project / "results/tuned/per_problem.jsonl").write_text('{"task_id": "HumanEval/0", "n": 1, "correct": 1}\n')


def test_a_log_killed_half_way_is_completed_by_the_rerun_and_logged_once(tmp_path):
    import mlflow

    write_project(tmp_path)
    killed = log(tmp_path, "kill")
    assert killed.returncode == -9, killed.stderr
    rerun = log(tmp_path, "log")
    assert rerun.returncode == 0, rerun.stderr
    run_id, new = json.loads(rerun.stdout.splitlines()[-1])
    assert new, "the rerun took the killed, unfinished run for a logged experiment"
    again = log(tmp_path, "log")
    assert json.loads(again.stdout.splitlines()[-1]) == [run_id, False]  # logged once

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("evolab")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # the unfinished one is gone
    run = runs[0]
    assert run.info.status == "FINISHED" and "evolab_key" in run.data.tags
    assert run.data.metrics == {"eval.humaneval.pass_at_1": 0.5}
    logged = {f.path for f in client.list_artifacts(run_id)} | {f.path for f in client.list_artifacts(run_id, "metrics")}
    assert {"params.yaml", "metrics/eval.json"} <= logged
    assert [f.path for f in client.list_artifacts(run_id, "results/tuned")] == ["results/tuned/per_problem.jsonl"]


def test_a_log_killed_while_mlflow_creates_its_store_leaves_no_broken_store(tmp_path):
    """MLflow makes a new SQLite store in a series of migrations: a first log killed among them left a store every
    later log failed on (`table ... already exists`)."""
    (tmp_path / "params.yaml").write_text("rounds: 1\n")
    (tmp_path / "metrics").mkdir()
    killed = log(tmp_path, "kill-creating")
    assert killed.returncode == -9, killed.stderr
    rerun = log(tmp_path, "log")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout.splitlines()[-1])[1] is True


def test_a_response_cache_that_is_not_a_database_names_the_file_and_the_fix(tmp_path):
    import pytest

    from evolab.core.cache import ResponseCache
    from evolab.core.errors import StageError

    bad = tmp_path / "responses.sqlite"
    bad.write_text("this is not SQLite\n" * 100)
    with pytest.raises(StageError, match=rf"{bad} is not a response cache .*mv {bad} {bad}.bad.*EVOLAB_CACHE"):
        ResponseCache(bad)


def test_runs_open_as_model_training_and_carry_their_training_set_as_a_dataset(tmp_path):
    """MLflow 3's UI opens an experiment on its runs only when it is marked as model training; each run carries
    data/train.jsonl as a dataset input, one digest for the same rows, so that runs group by their data."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rows = [{"id": "seed-000", "instruction": "Add two numbers.", "output": "def add(a, b):\n    return a + b",
             "round": 0, "verification": {"passed": True, "tests": ["assert add(1, 2) == 3"]}}]
    runs = []
    failed = [{**rows[0], "verification": {"passed": False, "tests": ["assert add(1, 2) == 3"]}}]  # a nested field differs
    for train, score in ((rows, 0.5), (rows, 0.25), (failed, 0.75)):
        project = tmp_path / f"p{score}"
        write_project(project)
        (project / "data").mkdir()
        (project / "data/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
        done = log(project, "log", uri, score)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.splitlines()[-1])[0])

    client = mlflow.MlflowClient(uri)
    assert client.get_experiment_by_name("evolab").tags["mlflow.experimentKind"] == "custom_model_development"
    inputs = [client.get_run(run_id).inputs.dataset_inputs for run_id in runs]
    assert [len(i) for i in inputs] == [1, 1, 1]
    datasets = [i[0].dataset for i in inputs]
    assert {d.name for d in datasets} == {"train.jsonl"} and "data/train.jsonl" in datasets[0].source
    assert {t.key: t.value for t in inputs[0][0].tags}["mlflow.data.context"] == "training"
    assert datasets[0].digest == datasets[1].digest != datasets[2].digest  # the same rows, one dataset; other rows, another


def test_a_run_spans_the_experiment_from_its_first_stage_to_the_log(tmp_path):
    """The MLflow run starts when the experiment's first stage started (logs/stages.jsonl, written by every stage),
    not when the log stage did; stages of an earlier experiment, before the last log, do not count."""
    import time

    import mlflow

    write_project(tmp_path)
    now = time.time()
    runs = [("python -m stages.seed", now - 7200), ("python -m stages.log", now - 7000),
            ("python -m stages.evolve 1", now - 3600), ("python -m stages.merge", now - 3000)]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/stages.jsonl").write_text("".join(
        json.dumps({"cmd": cmd, "start": start, "end": start + 60, "seconds": 60, "ok": True}) + "\n" for cmd, start in runs))
    done = log(tmp_path, "log")
    assert done.returncode == 0, done.stderr
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(json.loads(done.stdout.splitlines()[-1])[0])
    assert run.info.start_time == int(1000 * (now - 3600))
    assert run.info.end_time >= int(1000 * now) and run.info.status == "FINISHED"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # starts an MLflow server: 15-30 s
def test_the_log_and_the_report_work_against_a_tracking_server_with_proxied_artifacts(tmp_path):
    """Several machines, one record: `mlflow server` with a database backend and artifact proxying, on 127.0.0.1.
    The log stage's function logs there once; the artifacts land in the server's store, not beside the project;
    the report reads the run and its per-problem file back through the server."""
    import signal
    import time
    import urllib.request

    from evolab.reporting.runs import from_mlflow

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                               f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "served"),
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=1).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        project = tmp_path / "project"
        write_project(project)
        first, again = log(project, "log", uri), log(project, "log", uri)
        assert first.returncode == 0, first.stderr
        run_id, new = json.loads(first.stdout.splitlines()[-1])
        assert new and json.loads(again.stdout.splitlines()[-1]) == [run_id, False]  # logged once
        assert not (project / "mlartifacts").exists() and not (project / "mlruns").exists()
        assert (next((tmp_path / "served").rglob("per_problem.jsonl"))).read_text().startswith('{"task_id": "HumanEval/0"')
        runs = from_mlflow(uri)
        default = default_experiment()  # what LOG logs: the run is named by its method, rounds and student
        name = f"{default.method.name}-r{default.rounds}-{default.model.name}"
        assert [r.name for r in runs] == [name] and runs[0].metrics == {"eval.humaneval.pass_at_1": 0.5}
        assert runs[0].read("results/tuned/per_problem.jsonl").startswith('{"task_id": "HumanEval/0"')  # through the proxy
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
