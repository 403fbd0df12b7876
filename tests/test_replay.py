"""A round's teacher calls travel with the experiment (calls/STAGE.jsonl, DVC outputs): another clone that pulls
them from a DVC remote reruns the teacher stages with no teacher call and the same output; a teacher budget stops
a stage cleanly, and the rerun with a larger budget resumes it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import dvc, ran, scripted

from evolab.testing.teacher import ScriptedTeacher

pytestmark = pytest.mark.slow  # DVC pipelines, each stage a process

TEACHER_STAGES = {"seed", "evolve@r1", "evolve@r2"}


def teacher_calls(teacher: ScriptedTeacher) -> int:
    return sum(teacher.requests.values())


def compose(repo: Path, teacher: ScriptedTeacher, *extra: str) -> None:
    overrides = ["profile=smoke", "rounds=2", *scripted(teacher.base_url), *extra]
    subprocess.run([sys.executable, "-m", "evolab.core.config", *overrides], cwd=repo, check=True, capture_output=True)


def data_hashes(repo: Path) -> dict[str, str]:
    """The md5 of every data and call-log output of the teacher stages and merge, as dvc.lock records them."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for name, stage in stages.items() if name in TEACHER_STAGES | {"merge"}
            for out in stage.get("outs", []) if not out["path"].startswith("metrics/")}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_another_clone_reruns_the_teacher_stages_from_the_pulled_calls_with_no_teacher_call(project, tmp_path):
    teacher = ScriptedTeacher()
    first = {**os.environ, "EVOLAB_CACHE": str(tmp_path / "cache-a"), "OPENAI_API_KEY": "none"}
    compose(project, teacher)
    dvc(project, "repro", "merge", env=first)
    asked = teacher_calls(teacher)
    assert asked > 0 and (project / "calls/evolve_r2.jsonl").is_file()
    dvc(project, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "the experiment")
    dvc(project, "push")

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    dvc(clone, "pull", "--with-deps", "merge")  # the rounds that ran (a whole experiment: `dvc pull`)
    # Another machine: its own response cache, empty; the same teacher, which must not be asked.
    second = {**first, "EVOLAB_CACHE": str(tmp_path / "cache-b")}
    rerun = dvc(clone, "repro", "--force", "merge", env=second)
    assert TEACHER_STAGES <= ran(rerun)
    assert teacher_calls(teacher) == asked
    assert data_hashes(clone) == data_hashes(project)
    stats = json.loads((clone / "metrics/evolve/r2.json").read_text())
    assert stats["live_calls"] == 0 and stats["cached_calls"] == stats["calls"] > 0
    teacher.server.shutdown()


def test_a_teacher_budget_stops_a_stage_cleanly_and_a_larger_one_resumes_it(project, tmp_path):
    teacher = ScriptedTeacher()
    env = {**os.environ, "EVOLAB_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": "none"}
    compose(project, teacher, "teacher.budget_tokens=100", "teacher.concurrency=1")
    stopped = dvc(project, "repro", "seed", env=env, check=False)
    assert stopped.returncode != 0 and "teacher budget of 100 live tokens is spent" in stopped.stdout + stopped.stderr
    assert not (project / "data/seed.jsonl").exists()
    paid = teacher_calls(teacher)
    assert 0 < paid < 4  # the smoke profile's four seeds: stopped before the last

    compose(project, teacher, "teacher.budget_tokens=null")
    dvc(project, "repro", "seed", env=env)
    stats = json.loads((project / "metrics/seed.json").read_text())
    assert stats["cached_calls"] == paid and stats["live_calls"] == 4 - paid == teacher_calls(teacher) - paid
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    records = [json.loads(line) for line in (project / "data/seed.jsonl").read_text().splitlines()]
    assert all(r["teacher_tokens"]["calls"] == 1 and r["teacher_tokens"]["completion_tokens"] > 0 for r in records)
    teacher.server.shutdown()
