"""log: record the experiment (all params, pass@1, per-round data statistics, the loss curve) in MLflow.

Runs on every `dvc exp run`/`dvc repro` (always_changed), including when DVC restored every
result from its run-cache; an experiment identical to one already logged is not logged twice.
"""
from __future__ import annotations

from evolab.core.config import load
from evolab.core.stage import run_stage
from evolab.reporting.tracking import collect_metrics, log_experiment, loss_curve, tracking_uri


def main() -> None:
    params = load()
    run_id, new = log_experiment(params, collect_metrics(), tracking_uri(), loss_curve())
    print(f"log: MLflow run {run_id} ({'new' if new else 'already logged'}) in {tracking_uri()}")


if __name__ == "__main__":
    run_stage(main)
