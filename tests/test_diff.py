"""The run-diff command on two results folders."""
import json
import subprocess
import sys

import pytest

from evolab.evaluation.diff import diff_runs, mcnemar_p, read_run


def write_run(folder, passed):
    folder.mkdir()
    rows = [{"task_id": f"HumanEval/{i}", "n": 1, "correct": int(p), "kind": "pass" if p else "wrong_or_error"}
            for i, p in enumerate(passed)]
    (folder / "per_problem.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_diff_lists_won_and_lost_problems(tmp_path):
    write_run(tmp_path / "a", [1, 1, 0, 0, 1])
    write_run(tmp_path / "b", [1, 0, 1, 1, 1])
    d = diff_runs(read_run(str(tmp_path / "a")), read_run(str(tmp_path / "b")))
    assert d["won"] == ["HumanEval/2", "HumanEval/3"] and d["lost"] == ["HumanEval/1"]
    assert d["pass@1_a"] == pytest.approx(0.6) and d["pass@1_b"] == pytest.approx(0.8)
    assert d["lost_kinds"] == {"HumanEval/1": "wrong_or_error"}
    out = subprocess.run([sys.executable, "-m", "evolab.evaluation.diff", str(tmp_path / "a"), str(tmp_path / "b")],
                         capture_output=True, text=True, check=True).stdout
    assert "won 2, lost 1" in out and "HumanEval/1(wrong_or_error)" in out


def test_mcnemar_exact_p_values():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_p(3, 3) == 1.0


def test_a_missing_run_says_what_to_give(tmp_path):
    result = subprocess.run([sys.executable, "-m", "evolab.evaluation.diff", str(tmp_path / "nope"), str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "results folder" in result.stderr
