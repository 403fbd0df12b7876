"""A round or an evaluation killed with SIGKILL half-way resumes: nothing finished is generated again, nothing is lost."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, compose_params, run_stage, scratch_params, scripted, tiny_student


def start_round(repo: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "EVOLAB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "stages.evolve", "1"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def empty_cache(path: Path, model_dir: Path | None = None) -> Path:
    """A response cache with nothing in it (that shares the assembled model, if given)."""
    path.mkdir()
    if model_dir:
        os.symlink(model_dir, path / "models")
    return path


def finish_round(repo: Path, cache: Path) -> tuple[str, dict]:
    process = start_round(repo, cache)
    process.communicate()
    assert process.returncode == 0
    return (repo / "data/evolve/r1.jsonl").read_text(), json.loads((repo / "metrics/evolve/r1.json").read_text())


def test_sigkilled_round_resumes_to_the_uninterrupted_output(tmp_path, scripted_teacher):
    """The scripted teacher, one request at a time, 0.3 s each: the kill lands after two evolutions."""
    project = tmp_path / "work"
    project.mkdir()
    scratch_params(project, ["profile=smoke", "rounds=1", *scripted(scripted_teacher.base_url), "teacher.concurrency=1"])
    run_stage(project, "seed", env={"EVOLAB_CACHE": str(tmp_path / "seed-cache")})
    cache = empty_cache(tmp_path / "cache")
    scripted_teacher.latency = 0.3
    try:
        killed = start_round(project, cache)
        for line in killed.stdout:
            if line.startswith("evolve@r1: evolved 2/"):  # two evolutions finished
                killed.send_signal(signal.SIGKILL)
                break
        killed.wait()
    finally:
        scripted_teacher.latency = 0.0
    assert killed.returncode == -signal.SIGKILL
    assert not (project / "data/evolve/r1.jsonl").exists()

    resumed, stats = finish_round(project, cache)
    assert stats["cached_calls"] >= 2  # the finished items came back from the cache ...
    assert stats["items"] == 4  # ... and none is lost

    uninterrupted, fresh_stats = finish_round(project, empty_cache(tmp_path / "fresh"))
    assert fresh_stats["cached_calls"] == 0
    assert stats["cached_calls"] + stats["live_calls"] == fresh_stats["live_calls"]
    assert resumed == uninterrupted


@pytest.mark.slow  # the tiny student through transformers
def test_a_sigkilled_evaluation_resumes_from_its_cached_generations(project, tmp_path, tiny_model, tiny_embedder,
                                                                   embedded_gguf):
    """eval/baseline/dev cache every generation: killed after two problems, the rerun generates only the rest
    and scores exactly what an uninterrupted run scores (a tiny student keeps it to seconds)."""
    compose_params(["profile=smoke", *tiny_student(tiny_model, tiny_embedder)], project / "params.yaml", project / "conf")

    def evaluate(cache: Path, kill_after: int | None = None) -> dict:
        env = {**os.environ, "EVOLAB_CACHE": str(cache)}
        process = subprocess.Popen([sys.executable, "-m", "stages.eval", "baseline"], cwd=project, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in process.stdout:
            if kill_after and line.startswith(f"eval: {kill_after}/"):
                process.send_signal(signal.SIGKILL)
                break
        process.wait()
        if kill_after:
            assert process.returncode == -signal.SIGKILL
            return {}
        assert process.returncode == 0
        return {"metrics": json.loads((project / "metrics/baseline.json").read_text()),
                "per_problem": (project / "results/baseline/per_problem.jsonl").read_text()}

    cache = empty_cache(tmp_path / "cache", embedded_gguf.parent)
    evaluate(cache, kill_after=2)
    assert not (project / "metrics/baseline.json").exists()
    resumed = evaluate(cache)
    assert resumed["metrics"]["cached_generations"] >= 2 and resumed["metrics"]["problems"] == 4
    fresh = evaluate(empty_cache(tmp_path / "fresh", embedded_gguf.parent))
    assert fresh["metrics"]["cached_generations"] == 0
    assert resumed["per_problem"] == fresh["per_problem"]
