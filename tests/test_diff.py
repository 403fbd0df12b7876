"""The run-diff command on two results folders."""
import json
import re
import subprocess
import sys
from dataclasses import asdict

import pytest

from evolab.evaluation.diff import BELOW, diff_runs, mcnemar_p, min_detectable_net, read_run, render, resolution


def write_run(folder, passed):
    folder.mkdir()
    rows = [{"task_id": f"HumanEval/{i}", "n": 1, "correct": int(p), "kind": "pass" if p else "wrong_or_error"}
            for i, p in enumerate(passed)]
    (folder / "per_problem.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def rows(ids, correct, n=1, kind="pass"):
    """A run's per-problem rows, as read_run returns them."""
    return {t: {"task_id": t, "n": n, "correct": c, "kind": kind} for t, c in zip(ids, correct)}


def test_diff_lists_won_and_lost_problems(tmp_path):
    write_run(tmp_path / "a", [1, 1, 0, 0, 1])
    write_run(tmp_path / "b", [1, 0, 1, 1, 1])
    d = diff_runs(read_run(str(tmp_path / "a")), read_run(str(tmp_path / "b")))
    assert d.won == ["HumanEval/2", "HumanEval/3"] and d.lost == ["HumanEval/1"]
    assert d.pass_at_1_a == pytest.approx(0.6) and d.pass_at_1_b == pytest.approx(0.8)
    assert d.lost_kinds == {"HumanEval/1": "wrong_or_error"}
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


def test_the_minimum_detectable_effect_matches_a_hand_worked_case():
    """10 discordant problems: the exact test at 0.05 is significant only for splits 10-0 and 9-1 (2 x 11/1024 =
    0.021; 8-2 gives 2 x 56/1024 = 0.109). A true net of 8 puts each discordant problem on the better side with
    probability 0.9: P(9 or 10 of 10) = 10 x 0.9^9 x 0.1 + 0.9^10 = 0.736, short of 80 %; a net of 9 (0.95):
    10 x 0.95^9 x 0.05 + 0.95^10 = 0.914. So 9 problems is the smallest net difference detected with 80 % power."""
    assert min_detectable_net(10) == 9
    assert min_detectable_net(13) == 10  # HumanEval's fine-tune noise here: 6.1 points of 164
    assert min_detectable_net(5) is None  # even 5-0 has p = 0.0625: five differing problems resolve nothing
    assert resolution(5, 4).reads == BELOW and resolution(5, 4).mde == 8
    assert asdict(resolution(1, 1)) == {"won": 1, "lost": 1, "mcnemar_p": 1.0, "mde": None, "reads": BELOW}  # too few to resolve
    assert asdict(resolution(1, 6, noise=13)) == {"won": 1, "lost": 6, "mcnemar_p": 0.125, "mde": 10, "reads": BELOW}
    assert resolution(20, 6).reads == "significant" and resolution(20, 6).mde == 15
    assert asdict(resolution(9, 2)) == {"won": 9, "lost": 2, "mcnemar_p": 0.0654296875, "mde": 10, "reads": BELOW}


def test_the_diff_command_prints_each_line_and_the_json(tmp_path, monkeypatch, capsys):
    from evolab.evaluation.diff import main

    write_run(tmp_path / "a", [1, 1, 0, 0, 1])
    write_run(tmp_path / "b", [1, 0, 1, 1])  # HumanEval/4 only in a
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    monkeypatch.setattr(sys, "argv", ["diff", a, b])
    main()
    assert capsys.readouterr().out.splitlines() == [
        f"4 common tasks: pass@1 0.500 ({a}) -> 0.750 ({b})", "won 2, lost 1 (exact McNemar p = 1)",
        "won:  HumanEval/2 HumanEval/3", "lost: HumanEval/1(wrong_or_error)", f"not compared: 1 only in {a}, 0 only in {b}"]
    monkeypatch.setattr(sys, "argv", ["diff", a, a])
    main()
    assert capsys.readouterr().out.splitlines()[1:] == ["won 0, lost 0 (exact McNemar p = 1)", "won:  -", "lost: -"]
    monkeypatch.setattr(sys, "argv", ["diff", a, b, "--json"])
    main()
    assert json.loads(capsys.readouterr().out) == asdict(diff_runs(read_run(a), read_run(b)))


def test_tasks_are_compared_in_numeric_order_and_only_where_both_ran(tmp_path):
    a = rows(["HumanEval/10", "HumanEval/9", "HumanEval/2", "Mbpp/1"], [0, 0, 2, 1], n=2, kind="wrong_or_error")
    b = rows(["HumanEval/9", "HumanEval/10", "HumanEval/2", "HumanEval/3", "Mbpp/1"], [1, 2, 0, 2, 1], n=2, kind="wrong_or_error")
    d = diff_runs(a, b)
    assert d.won == ["HumanEval/9", "HumanEval/10"] and d.lost == ["HumanEval/2"]
    assert (d.tasks, d.only_in_a, d.only_in_b) == (4, [], ["HumanEval/3"])
    assert d.pass_at_1_a == pytest.approx((0 + 0 + 1 + 0.5) / 4) and d.pass_at_1_b == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    assert diff_runs(a, b, key="correct").mcnemar_p == mcnemar_p(2, 1)


def test_a_run_is_read_from_a_folder_a_file_or_a_git_revision(tmp_path, monkeypatch):
    from helpers import dvc

    repo = tmp_path / "repo"
    repo.mkdir()
    write_run(repo / "results", [1, 0])
    (repo / "results/per_problem.jsonl").write_text((repo / "results/per_problem.jsonl").read_text() + "  \n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run a"], cwd=repo, check=True)
    write_run(tmp_path / "b", [0, 0])
    (repo / "results/per_problem.jsonl").write_text((tmp_path / "b/per_problem.jsonl").read_text())  # the workspace moves on
    monkeypatch.chdir(repo)
    at_head = read_run("HEAD:results")
    assert [row["correct"] for row in at_head.values()] == [1, 0]  # the committed run, blank line skipped
    assert read_run("HEAD:results/per_problem.jsonl") == at_head
    assert [row["correct"] for row in read_run("results/").values()] == [0, 0]
    assert read_run("HEAD:results/") == at_head
    write_run(repo / "runX", [1])
    assert list(read_run("runX/")) == ["HumanEval/0"]
    with pytest.raises(SystemExit, match=r"^nope/per_problem.jsonl not found: give a results folder \(results/tuned\), "
                                         r"its per_problem.jsonl, or REV:PATH\.$"):
        read_run("nope")


def test_one_common_task_and_ids_with_folders_or_names_are_ordered_and_averaged_right():
    one = diff_runs(rows(["HumanEval/0"], [1]), rows(["HumanEval/0"], [1]))
    assert (one.pass_at_1_a, one.pass_at_1_b) == (1.0, 1.0)
    d = diff_runs(rows(["Suite/x/10", "Suite/x/9", "Own/b", "Own/a"], [0, 0, 0, 0]),
                  rows(["Suite/x/10", "Suite/x/9", "Own/b", "Own/a"], [1, 1, 1, 1]))
    assert d.won == ["Own/a", "Own/b", "Suite/x/9", "Suite/x/10"]
    lost = diff_runs(rows(["T/1", "T/2"], [1, 1]), rows(["T/1", "T/2"], [0, 0], kind="no_code"))
    assert render(lost, "a", "b").splitlines()[3] == "lost: T/1(no_code) T/2(no_code)"


def test_the_diff_command_describes_itself_and_indents_its_json(tmp_path, monkeypatch, capsys):
    from evolab.evaluation.diff import __doc__ as doc
    from evolab.evaluation.diff import main

    monkeypatch.setattr(sys, "argv", ["diff", "--help"])
    with pytest.raises(SystemExit):
        main()
    out = capsys.readouterr().out
    assert doc.strip().splitlines()[0] in out and re.search(r"--json\s+print the diff as JSON\n", out)
    assert doc.strip().splitlines()[-1] in out  # raw: the docstring's lines kept as written
    write_run(tmp_path / "a", [1, 0])
    monkeypatch.setattr(sys, "argv", ["diff", str(tmp_path / "a"), str(tmp_path / "a"), "--json"])
    main()
    assert capsys.readouterr().out.startswith('{\n  "')
