"""Tracking (MLflow names and logging) and the ablation report from DVC or MLflow."""
