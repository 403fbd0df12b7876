"""A round killed with SIGKILL half-way resumes: nothing finished is generated again, nothing is lost."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from evolab.core.config import compose


def start_round(repo: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "EVOLAB_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "stages.evolve", "1"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def empty_cache(path: Path, model_dir: Path) -> Path:
    """A response cache with nothing in it that shares the assembled model."""
    path.mkdir()
    os.symlink(model_dir, path / "models")
    return path


def finish_round(repo: Path, cache: Path) -> tuple[str, dict]:
    process = start_round(repo, cache)
    process.communicate()
    assert process.returncode == 0
    return (repo / "data/evolve/r1.jsonl").read_text(), json.loads((repo / "metrics/evolve/r1.json").read_text())


def test_sigkilled_round_resumes_to_the_uninterrupted_output(project, tmp_path, embedded_gguf):
    """One answer at a time (teacher.parallel 1): a batched teacher decodes what is left after a kill in
    other batches, whose products round differently, so its resumed answers can differ (docs/pipeline.md);
    that nothing is lost or asked twice there is the queue test's (tests/test_pipeline.py)."""
    compose(["profile=smoke", "rounds=1", "teacher.parallel=1"], conf_dir=project / "conf", output=project / "params.yaml")
    subprocess.run([sys.executable, "-m", "stages.seed"], cwd=project, check=True, capture_output=True)
    cache = empty_cache(tmp_path / "cache", embedded_gguf.parent)

    killed = start_round(project, cache)
    for line in killed.stdout:
        if line.startswith("evolve@r1: evolved 2/"):  # two evolutions finished
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (project / "data/evolve/r1.jsonl").exists()

    resumed, stats = finish_round(project, cache)
    assert stats["cached_calls"] >= 2  # the finished items came back from the cache ...
    assert stats["items"] == 4  # ... and none is lost

    uninterrupted, fresh_stats = finish_round(project, empty_cache(tmp_path / "fresh", embedded_gguf.parent))
    assert fresh_stats["cached_calls"] == 0
    assert stats["cached_calls"] + stats["live_calls"] == fresh_stats["live_calls"]
    assert resumed == uninterrupted


def test_a_sigkilled_evaluation_resumes_from_its_cached_generations(project, tmp_path, tiny_model, embedded_gguf):
    """eval/baseline/dev cache every generation: killed after two problems, the rerun generates only the rest
    and scores exactly what an uninterrupted run scores (a tiny student keeps it to seconds)."""
    compose(["profile=smoke", f"model.hf={tiny_model}", "eval.backend=transformers", "eval.max_tokens=16"],
            conf_dir=project / "conf", output=project / "params.yaml")

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
