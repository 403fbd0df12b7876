"""The plan before a run and the ledger after it (evolab/reporting/plan.py), on the smoke profile with the scripted
teacher and the tiny student: the pilots run the real stages; the ledger reads what `dvc repro` then measured."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
from helpers import default_experiment, dvc, scripted, tiny_student

from evolab.reporting.plan import fit, pilot_sizes, seconds, spread
from evolab.testing.teacher import ScriptedTeacher


def test_a_pilots_problems_are_spread_over_the_benchmark():
    assert spread(default_experiment(), 4) == ["HumanEval/0", "HumanEval/41", "HumanEval/82", "HumanEval/123"]


def test_a_teacher_stages_seconds_follow_its_tokens_and_other_stages_their_size():
    small, large = {"seconds": 10.0, "completion_tokens": 100.0}, {"seconds": 20.0, "completion_tokens": 300.0}
    assert seconds(small, large, (3, 6, 12), {"completion_tokens": 500.0}) == 30.0  # 5 s + 0.05 s a token
    assert seconds({"seconds": 10.0}, {"seconds": 20.0}, (3, 6, 12), {}) == 40.0  # 3.33 s a seed
    assert seconds({**small, "completion_tokens": 300.0}, large, (3, 6, 12), {"completion_tokens": 600.0}) == 40.0


def test_the_pilots_fill_a_batching_backends_slots_and_stop_at_the_experiments_size():
    assert pilot_sizes(None, 8, 16, 164) == (32, 64)  # the student's 16 slots, full in both pilots
    assert pilot_sizes(None, 3, 16, 12) == (6, 12)  # 12 seeds never fill the teacher's 16: the larger pilot is the run
    assert pilot_sizes(None, 3, 1, 1000) == (3, 6)  # one request at a time: the floor
    assert pilot_sizes(1, 3, 16, 4) == (1, 2) and pilot_sizes(5, 3, 16, 4) == (2, 4) and pilot_sizes(None, 3, 1, 1) == (1, 1)


def test_the_fit_reads_each_stage_at_the_experiments_size(tmp_path):
    """The default profile (12 seeds, HumanEval's 164 problems) from pilots of 3 and 6 seeds, 8 and 16 problems."""
    params = default_experiment()
    pilots = [{"seed": {"seconds": 10.0, "calls": 3.0, "prompt_tokens": 30.0, "completion_tokens": 300.0},
               "train_tokens": {"tokens": 1000.0}, "eval": {"seconds": 20.0}},
              {"seed": {"seconds": 16.0, "calls": 6.0, "prompt_tokens": 60.0, "completion_tokens": 600.0},
               "train_tokens": {"tokens": 2000.0}, "eval": {"seconds": 36.0}}]
    args = argparse.Namespace(price_prompt=1.0, price_completion=2.0, mfu=0.4, peak_tflops=989.0)
    plan = fit(params, [], [(3, 8), (6, 16)], pilots, args)
    seed = plan["stages"]["seed"]
    assert (seed["calls"], seed["completion_tokens"]) == (12, 1200)  # 9 calls and 900 tokens over 9 seeds, at 12
    assert seed["seconds"] == 28.0 and plan["stages"]["eval"]["seconds"] == 332.0  # 10 s + 0.02 s a token; 2 s a problem
    assert "train_tokens" not in plan["stages"] and plan["gpu_hours"] > 0  # 4,000 training tokens priced on a GPU
    assert plan["money"] == round((12 * 10 + 1200 * 2) / 1e6, 2)
    # 16 pilot problems against the student's 16 decoding slots, which 164 problems keep full: noted; 6 pilot seeds
    # against the teacher's 16 slots, which 12 seeds do not fill either: not noted
    assert [note.split(" decoding")[0] for note in plan["notes"]] == ["The larger pilot's 16 problems fill eval.parallel's 16"]
    assert fit(params, [], [(16, 16), (32, 32)], pilots, args)["notes"] == []
    # the dev set's 24 problems, smaller than both pilots': both scored it whole, and their mean is the plan
    dev = [{**pilot, "dev": {"seconds": seconds}} for pilot, seconds in zip(pilots, (30.0, 34.0))]
    assert fit(params, [], [(6, 32), (12, 64)], dev, args)["stages"]["dev"]["seconds"] == 32.0


@pytest.mark.slow  # two pilots and a run of the whole DAG: minutes
def test_the_plan_prices_every_stage_from_two_pilots_and_the_ledger_reads_the_run_beside_it(project, tmp_path,
                                                                                           tiny_model, tiny_embedder):
    teacher = ScriptedTeacher()
    overrides = ["profile=smoke", "rounds=1", *scripted(teacher.base_url), *tiny_student(tiny_model, tiny_embedder)]
    env = {**os.environ, "EVOLAB_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": "none", "PYTHONPATH": str(project)}

    def plan(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "evolab.reporting.plan", *args], cwd=project, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads((project / "reports/plan.json").read_text())

    planned = plan(*overrides, "--pilot", "1", "--pilot-problems", "1", "--price-prompt", "1", "--price-completion", "2")
    piloted = sum(teacher.requests.values())
    assert planned["pilot_seeds"] == [1, 2] and planned["seeds"] == 4
    assert piloted == 3 * 4  # 1 + 2 seeds, each answered, evolved, judged and its evolution answered (all kept here)
    stages = planned["stages"]
    assert {"seed", "evolve@r1", "merge", "train", "eval", "baseline", "dev"} <= set(stages) and "log" not in stages
    assert stages["seed"]["calls"] == 4  # one answer per seed
    small, large = planned["pilots"]
    assert all(stages[name].get(key) == round((small[name][key] + large[name][key]) / 3 * 4, 1)  # in proportion to 1 + 2 seeds
               for name in ("seed", "evolve@r1") for key in ("calls", "prompt_tokens", "completion_tokens"))
    assert planned["money"] == round((planned["teacher"]["prompt_tokens"] + 2 * planned["teacher"]["completion_tokens"]) / 1e6, 2)
    assert plan("--refit", "--price-prompt", "1", "--price-completion", "2")["stages"] == stages  # from the saved pilots
    assert sum(teacher.requests.values()) == piloted  # no pilot ran again

    subprocess.run([sys.executable, "-m", "evolab.core.config", *overrides], cwd=project, env=env, check=True)
    dvc(project, "repro", env=env)
    plan("--ledger")
    ledger = (project / "reports/plan.md").read_text()
    seed = json.loads((project / "metrics/seed.json").read_text())
    row = next(line for line in ledger.splitlines() if line.startswith("| seed |")).split(" | ")
    assert row[4] == "4" and row[5] == f"{seed['calls']:,.0f}" == "4" and row[6] == "1.00"  # calls: planned, measured
    assert all(f"| {name} |" in ledger for name in ("train", "eval", "baseline", "dev"))
    teacher.server.shutdown()
