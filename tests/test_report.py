"""The report's rules: WizardCoder v2's evol stop (evolve while the dev set improves), which experiment stands for the rounds."""
import json
import subprocess
import sys
from pathlib import Path

from evolab.reporting.paper import Paper, PaperControls, load_paper
from evolab.reporting.runs import Run, deepest, from_dvc
from evolab.reporting.sections import (
    controls_section,
    data_section,
    evol_stop,
    models_section,
    paired_cell,
    statistic,
    verification_section,
)


def test_evol_stop_keeps_the_round_before_the_first_drop():
    assert evol_stop({1: 0.2, 2: 0.3, 3: 0.35, 4: 0.3}) == 3
    assert evol_stop({1: 0.4, 2: 0.3, 3: 0.5}) == 1  # halted at the first drop, even if a later round recovers
    assert evol_stop({1: 0.1, 2: 0.1, 3: 0.2}) == 3  # no drop: the last round
    assert evol_stop({2: 0.5}) == 2


def test_the_per_round_section_reads_the_deepest_code_evol_experiment():
    def run(name: str, method: str, rounds: int) -> Run:
        return Run(name, {"method.name": method, "rounds": str(rounds)}, {}, read=lambda path: "")

    # MagicoderS's round 0 holds its OSS-Instruct part too, so it never stands for the rounds
    assert deepest([run("a", "code_evol", 2), run("b", "magicoder_s", 3), run("c", "code_evol", 1)]).name == "a"
    assert deepest([run("old", "", 1), run("oss", "oss_instruct", 3)]).name == "old"  # before methods existed


def test_a_round_that_kept_nothing_shows_a_dash_not_nan():
    assert statistic({"similarity.r1.item_to_test.mean": 0.4321}, "similarity.r1.item_to_test.mean") == "0.432"
    assert statistic({}, "similarity.r2.item_to_test.mean") == "–"


def test_the_per_round_data_say_what_each_kept_item_cost_the_teacher():
    metrics = {"data.items_per_round.r0": 4, "seed.prompt_tokens": 100, "seed.completion_tokens": 300,
               "evolve.r1.items": 4, "evolve.r1.kept": 2, "evolve.r1.prompt_tokens": 900, "evolve.r1.completion_tokens": 500,
               "evolve.r2.items": 4, "evolve.r2.kept": 0, "evolve.r2.prompt_tokens": 800, "evolve.r2.completion_tokens": 100}
    run = Run("r", {"rounds": "2", "model.name": "m"}, metrics, read=lambda path: "")
    rows = [line for line in data_section(run, Paper(similarity="")) if line.startswith("| ") and line[2].isdigit()]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["100", "700", "–"]  # (100 + 300) / 4, 1400 / 2, none kept


def test_every_comparison_carries_its_paired_test_from_the_per_problem_results():
    def rows(passed: set[int]) -> str:
        return "\n".join(json.dumps({"task_id": f"HumanEval/{i}", "n": 1, "base_correct": int(i in passed),
                                     "correct": int(i in passed)}) for i in range(20))

    files = {"results/baseline/per_problem.jsonl": rows({0, 1, 2}),
             "results/tuned/per_problem.jsonl": rows({1, 2, 3, 4, 5, 6, 7, 8, 9, 10})}
    run = Run("r", {"rounds": "1"}, {}, read=lambda path: files.get(path, ""))
    # tuned against untuned: won 8 (3..10), lost 1 (0); exact McNemar p = 2 * (1 + 9) / 2**9; 9 discordant problems
    # detect a net of 8 with 80 % power (tests/test_diff.py), 13 (HumanEval's repeated-run noise) a net of 10
    assert paired_cell(run, "baseline", run, "eval", "humaneval") == f"8 / 1 (p = {2 * 10 / 2**9:.2g}; MDE 8)"
    assert paired_cell(run, "eval", run, "baseline", "humaneval") == f"1 / 8 (p = {2 * 10 / 2**9:.2g}; MDE 8)"
    files["results/tuned/per_problem.jsonl"] = rows({0, 1, 3, 4, 5})  # won 3, lost 1: under the MDE
    assert paired_cell(run, "baseline", run, "eval", "humaneval", {"humaneval": 13}) == (
        "3 / 1 (p = 0.62; MDE 10; below what this benchmark resolves here)")
    assert paired_cell(run, "baseline", run, "controls.samples-r1.eval", "humaneval") == "–"  # no results: a dash, not 0 / 0


def test_a_report_made_while_an_experiment_is_queued_or_running_leaves_it_out(project):
    """`dvc exp show` lists a queued or running experiment beside the finished ones; a running one's rev
    is "workspace", which has no results to read (a report made during a queued sweep crashed on it)."""
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "exp", "run", "--queue", "-S", "profile=smoke", "--name", "waiting"], cwd=project,
                   check=True, capture_output=True)
    shown = subprocess.run([dvc, "exp", "show", "--json"], cwd=project, check=True, capture_output=True, text=True)
    assert '"waiting"' in shown.stdout and '"queued"' in shown.stdout  # dvc does list it
    assert from_dvc(project) == []


def test_a_section_with_nothing_to_compare_says_so_instead_of_an_empty_table():
    def run(model: str) -> Run:
        return Run(model, {"model.name": model, "rounds": "1", "eval.benchmark": "humaneval"}, {}, read=lambda path: "")

    paper = Paper(controls=PaperControls(tokens_matched_total=0, rows={}, note=""))
    assert "No experiments that differ only in the model" in "\n".join(models_section([run("a")], paper))
    assert "No experiment with controls" in "\n".join(controls_section([run("a")], paper))
    table = models_section([run("a"), run("b")], paper)  # two models, the rest alike: one row each
    assert "No experiments" not in "\n".join(table) and sum(line.startswith(("| a |", "| b |")) for line in table) == 2


def test_the_verification_section_gives_pass_shares_and_calls_per_kept_item_per_round_and_method():
    metrics = {"verify.items": 10, "verify.passed": 6, "verify.pass_share": 0.6, "verify.first_attempt_passed": 4,
               "verify.calls_per_kept": 2.5, "verify.by_round.r0.items": 8, "verify.by_round.r0.passed": 6,
               "verify.by_round.r0.pass_share": 0.75, "verify.by_round.r0.first_attempt_passed": 4,
               "verify.by_round.r0.calls_per_kept": 2.0, "verify.by_round.r1.items": 2, "verify.by_round.r1.passed": 0,
               "verify.by_round.r1.pass_share": 0.0, "verify.by_round.r1.first_attempt_passed": 0,
               "verify.by_part.code_evol.items": 10, "verify.by_part.code_evol.passed": 6, "verify.by_part.code_evol.pass_share": 0.6,
               "verify.by_part.code_evol.first_attempt_passed": 4, "verify.by_part.code_evol.calls_per_kept": 2.5}
    run = Run("exp", {"verify.mode": "tests", "method.name": "code_evol", "rounds": "1"}, metrics, read=lambda path: "")
    rows = [line for line in verification_section([run]) if line.startswith("| exp |")]
    assert rows == ["| exp | code_evol | 1 (all) | 10 | 6 | 0.60 | 4 | 2.5 |", "| exp | code_evol | 1 (r0) | 8 | 6 | 0.75 | 4 | 2.0 |",
                    "| exp | code_evol | 1 (r1) | 2 | 0 | 0.00 | 0 | – |", "| exp | code_evol | 1 (code_evol) | 10 | 6 | 0.60 | 4 | 2.5 |"]
    assert "No experiment verified" in "\n".join(verification_section([Run("x", {"verify.mode": "off"}, {}, read=lambda p: "")]))


def test_the_papers_figures_are_read_typed_and_a_wrong_key_or_type_names_the_file(tmp_path):
    import pytest
    import yaml

    from evolab.core.errors import ConfigError

    shipped = Path(__file__).resolve().parents[1] / "conf/report/wizardcoder.yaml"
    paper = load_paper(shipped)
    assert paper.rounds.peak_round == 3 and paper.controls.rows[1].samples_matched == 56.1
    assert paper.methods.rows["oss_instruct"].tfidf_mean == 0.105 and paper.noise["humaneval"] == 13
    figures = yaml.safe_load(shipped.read_text())
    figures["rounds"]["peak_rund"] = 3
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(figures))
    with pytest.raises(ConfigError, match=r"typo.yaml: Key 'peak_rund' not in 'PaperRounds'.*did you mean peak_round"):
        load_paper(tmp_path / "typo.yaml")
    figures["rounds"] = {**yaml.safe_load(shipped.read_text())["rounds"], "peak_round": "three"}
    (tmp_path / "type.yaml").write_text(yaml.safe_dump(figures))
    with pytest.raises(ConfigError, match=r"type.yaml: Value 'three'.*rounds.peak_round"):
        load_paper(tmp_path / "type.yaml")
