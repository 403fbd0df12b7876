"""The experiments a report reads: from DVC's records (`dvc exp show`) or from the MLflow store, each with its params,
metrics and output files, and the ways the report groups them (sweeps of one setting, the deepest evolution)."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from evolab.core.paths import SIMILARITY
from evolab.core.records import Nearest
from evolab.core.schema import DERIVED
from evolab.evaluation.diff import by_task
from evolab.evaluation.suites import metric_suite
from evolab.reporting.tracking import flatten, numeric, per_problem_path


@dataclass
class Run:
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    read: Callable[[str], str] = field(repr=False, compare=False)  # an output file of the experiment, as text

    def param(self, key: str) -> str:
        return self.params.get(key, "")


def from_mlflow(uri: str) -> list[Run]:
    import mlflow

    client = mlflow.MlflowClient(uri)  # not mlflow.set_tracking_uri: that exports the URI to every subprocess
    experiment = client.get_experiment_by_name("evolab")
    runs, token = [], None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], page_token=token)
        runs += page
        if not (token := page.token):
            break

    def reader(run_id: str) -> Callable[[str], str]:
        def read(path: str) -> str:  # "" for a run logged without that artifact
            if path not in {f.path for f in client.list_artifacts(run_id, str(Path(path).parent))}:
                return ""
            with tempfile.TemporaryDirectory() as tmp:
                return Path(client.download_artifacts(run_id, path, tmp)).read_text()
        return read

    return [Run(r.info.run_name, dict(r.data.params), dict(r.data.metrics), reader(r.info.run_id))
            for r in runs if "evolab_key" in r.data.tags]  # not a log that a kill left unfinished


def from_dvc(repo: Path) -> list[Run]:
    shown = json.loads(subprocess.run([str(Path(sys.executable).parent / "dvc"), "exp", "show", "--json", "--all-commits"], cwd=repo,
                                      capture_output=True, text=True, check=True).stdout)
    import dvc.api
    from dvc.exceptions import PathMissingError

    def reader(rev: str) -> Callable[[str], str]:
        def read(path: str) -> str:  # "" for an experiment from before that output existed
            try:
                return dvc.api.read(path, repo=str(repo), rev=rev)
            except PathMissingError:
                return ""
        return read

    runs = []
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            if (exp.get("executor") or {}).get("state") not in (None, "success"):
                continue  # queued, running (its rev is the word "workspace") or failed: no results to read
            for rev in exp["revs"]:
                data = rev["data"]
                params = {k: str(v) for k, v in flatten(data["params"]["params.yaml"]["data"]).items()}
                metrics: dict[str, float] = {}
                for path, content in data["metrics"].items():
                    metrics.update(numeric(content.get("data") or {}, path))
                runs.append(Run(exp.get("name") or rev["rev"][:7], params, metrics, reader(rev["rev"])))
    return runs


def distinct(runs: list[Run]) -> list[Run]:
    """One run per distinct experiment (DVC keeps a rerun as another experiment; MLflow logs it once)."""
    seen: dict[str, Run] = {}
    for run in runs:
        seen.setdefault(json.dumps([run.params, run.metrics], sort_keys=True), run)
    return sorted(seen.values(), key=lambda r: json.dumps(r.params, sort_keys=True))


def same_setup(runs: list[Run], vary: str) -> list[list[Run]]:
    """Runs grouped by every setting but `vary` (and the controls): one group per comparable sweep."""
    ignored = {vary, "controls.families"}
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.params.items() if k.split(".")[0] not in DERIVED
                          and k not in ignored and not k.startswith(vary + ".")}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def sweeps(runs: list[Run]) -> list[dict[int, Run]]:
    """Each rounds sweep (runs alike but for rounds and the controls, at least two rounds values) by round."""
    by_setup = [{int(r.param("rounds")): r for r in group} for group in same_setup(runs, "rounds")]
    return [sweep for sweep in by_setup if len(sweep) >= 2]


def method_groups(runs: list[Run]) -> list[dict[str, Run]]:
    """Experiments alike but for the method (at least two methods), one per method, by name."""
    groups = [{r.param("method.name"): r for r in group} for group in same_setup(runs, "method")]
    return [dict(sorted(g.items())) for g in groups if len(g) >= 2]


def deepest(runs: list[Run]) -> Run:
    """The Code Evol-Instruct experiment with the most rounds (MagicoderS's round 0 also holds its OSS-Instruct part)."""
    return max(runs, key=lambda r: (r.param("method.name") in ("", "code_evol"), int(r.param("rounds") or 0)))


def control_names(run: Run) -> list[str]:
    """The controls an experiment trained and evaluated (`controls.<name>.eval.*` metrics)."""
    return sorted({k.split(".")[1] for k in run.metrics if k.startswith("controls.") and k.endswith(".eval.problems")})


def dev_suite(run: Run) -> str:
    """The metric key of the experiment's dev set (evol_stop.benchmark; evolab-dev for one logged before it was a parameter)."""
    return metric_suite(run.param("evol_stop.benchmark") or "evolab-dev")


def per_problem(run: Run, prefix: str) -> dict[str, dict[str, Any]]:
    """The per-problem results behind a pass@1 cell (`eval`, `baseline`, `dev`, `controls.<name>.eval`)."""
    return by_task(run.read(per_problem_path(prefix)))


def similarity_items(run: Run) -> list[Nearest]:
    """Per training item: its round, nearest HumanEval problem and cosine (results/similarity.jsonl)."""
    return [Nearest.of(json.loads(line)) for line in run.read(SIMILARITY).splitlines() if line.strip()]
