"""The pipeline's mechanics through real DVC, Hydra and MLflow in a fresh repository, with the scripted teacher
(evolab/testing/teacher.py: every answer known in advance) and a tiny random-weight student, so that each test
knows exactly which stages rerun and which records are kept, on any machine. The real models run in
tests/test_end_to_end.py."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DVC, dvc, mlflow_runs, ran, read_jsonl, scripted, tiny_student, with_dvc_on_path

from evolab.evaluation.verification import attempt_seed
from evolab.methods.code_evol import item_seed
from evolab.reporting.figures import PLACEHOLDER
from evolab.testing.teacher import answers_right

pytestmark = pytest.mark.slow  # DVC experiments, each stage a process: minutes

SMOKE = ["-S", "profile=smoke"]
AFTER_MERGE = {"verify", "decontaminate", "similarity", "train", "eval", "dev"}
# Seeds 004-007 of evolab/data/seeds.jsonl: under the scripted teacher round 1 keeps none of their evolutions
# (004-006 draw misdirection: a solution; 007 reasoning: judged equal to its parent) and round 2 keeps seed-006
# and seed-007 (constraints). The heuristics are Code Evol-Instruct's per-item draw (code_evol.item_seed).
ROUND_SEEDS = ["seed-004", "seed-005", "seed-006", "seed-007"]


def overrides(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("-S", pair)]


@pytest.fixture
def student(tiny_model: Path, tiny_embedder: Path) -> list[str]:
    return overrides(*tiny_student(tiny_model, tiny_embedder))


@pytest.fixture
def teacher(scripted_teacher, tmp_path) -> list[str]:
    return overrides(*scripted(scripted_teacher.base_url))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A response cache of the test's own, so that every teacher call of the test is really made."""
    return {**os.environ, "EVOLAB_CACHE": str(tmp_path / "cache")}


def plot_description(png: Path) -> str:
    """What a report figure says it shows (report.PLACEHOLDER when it had no data)."""
    from PIL import Image

    with Image.open(png) as image:
        return image.text["Description"]


def commit_seeds(project: Path, ids: list[str]) -> list[str]:
    """A seed file of the chosen seeds, committed in the project; the override that uses it."""
    seeds = [r for r in read_jsonl(project / "evolab/data/seeds.jsonl") if r["id"] in ids]
    (project / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in seeds))
    subprocess.run(["git", "add", "seeds.jsonl"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "seeds"], cwd=project, check=True)
    return overrides("seed_data.path=seeds.jsonl")


def merged_ids(project: Path) -> list[str]:
    return [r["id"] for r in read_jsonl(project / "data/merged.jsonl")]


@pytest.mark.parametrize(
    "override, content, message",
    [
        ("rounds=-1", None, "rounds must be a non-negative integer"),
        ("rounds=2.5", None, "full_key: rounds"),
        ("model=no-such-model", None, "Could not find 'model/no-such-model'"),
        ("seed_data.path={dir}/missing.jsonl", None, "does not exist: set seed_data.path"),
        ("seed_data.path={dir}/empty.jsonl", "", "is empty"),
        ("seed_data.path={dir}/bad.jsonl", "{oops\n", "bad.jsonl, line 1: not valid JSON"),
        ("seed_data.path={dir}/noinstr.jsonl", '{"text": "x"}\n', "noinstr.jsonl, line 1: needs a non-empty string 'instruction'"),
        ("controls.families=[sizes]", None, "unknown control families ['sizes']"),
    ],
)
def test_bad_input_fails_before_any_stage_runs(project, tmp_path, override, content, message):
    name = override.split("/")[-1]
    if content is not None:
        (tmp_path / name).write_text(content)
    result = dvc(project, "exp", "run", *SMOKE, "-S", override.format(dir=tmp_path), check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert ran(result) == set()


def test_a_round_reruns_exactly_what_its_kept_evolutions_touch(project, teacher, student, env):
    """Round 0 (seed answers alone), round 1 that keeps nothing (merge's output is the same: nothing after it
    reruns), round 2 that keeps two (everything after merge reruns), back to round 1 (nothing), another student
    (training and evaluation only)."""
    args = ["exp", "run", *SMOKE, *commit_seeds(project, ROUND_SEEDS), *teacher, *student]
    seeds = [f"{i}@r0" for i in ROUND_SEEDS]
    zero = dvc(project, *args, "-S", "rounds=0", env=env)
    assert ran(zero) == {"seed", "merge", "baseline", "log"} | AFTER_MERGE
    assert merged_ids(project) == seeds
    train_r0 = (project / "data/train.jsonl").read_text()

    one = dvc(project, *args, "-S", "rounds=1", env=env)
    r1 = json.loads((project / "metrics/evolve/r1.json").read_text())
    assert (r1["kept"], r1["reasons"], r1["heuristics"]) == (0, {"solution_not_task": 3, "no_information_gain": 1},
                                                             {"misdirection": 3, "reasoning": 1})
    assert ran(one) == {"evolve@r1", "merge", "log"}  # merge's output is unchanged: nothing after it reruns
    assert merged_ids(project) == seeds and (project / "data/train.jsonl").read_text() == train_r0

    two = dvc(project, *args, "-S", "rounds=2", env=env)
    assert ran(two) == {"evolve@r2", "merge", "log"} | AFTER_MERGE
    assert merged_ids(project) == seeds + ["seed-006@r2", "seed-007@r2"]
    evolved = {r["id"]: r for r in read_jsonl(project / "data/evolve/r2.jsonl") if r["round"] == 2}
    assert {i: r["heuristic"] for i, r in evolved.items() if r["kept"]} == {"seed-006": "constraints", "seed-007": "constraints"}
    assert evolved["seed-006"]["instruction"].endswith("It must reject negative numbers with a ValueError.")

    back = dvc(project, *args, "-S", "rounds=1", env=env)
    assert ran(back) == {"log"}  # log always runs; every result came from DVC's run-cache
    assert merged_ids(project) == seeds

    # The same data for a base student (its untuned answers are plain completions): training and evaluation only.
    base = dvc(project, *args, "-S", "rounds=1", "-S", "model.kind=base", env=env)
    assert ran(base) == {"train", "eval", "dev", "baseline", "log"}
    assert json.loads((project / "metrics/baseline.json").read_text())["prompt_style"] == "base"

    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    experiments = [e for rev in shown for e in (rev.get("experiments") or [])]
    rounds_shown = sorted(run["data"]["params"]["params.yaml"]["data"]["rounds"] for e in experiments for run in e["revs"])
    assert rounds_shown == [0, 1, 1, 1, 2]

    client, runs = mlflow_runs(project)
    # rounds=1 twice is one experiment (same params and metrics): logged once.
    assert sorted((r.data.params["rounds"], r.data.params["model.kind"]) for r in runs) == [
        ("0", "instruct"), ("1", "base"), ("1", "instruct"), ("2", "instruct")]
    assert {r.data.params["rounds"]: r.data.metrics["data.merged_items"] for r in runs} == {"0": 4, "1": 4, "2": 6}
    assert all(r.data.metrics["dev.problems"] == 4 and r.data.metrics["eval.humaneval.pass_at_1"] == 0 for r in runs)
    for r in runs:  # the loss curve, step by step
        history = client.get_metric_history(r.info.run_id, "train.loss")
        assert [m.step for m in history] == list(range(1, int(r.data.metrics["train.steps"]) + 1))

    names = {run["data"]["params"]["params.yaml"]["data"]["rounds"]: e["name"] for e in experiments for run in e["revs"]
             if run["data"]["params"]["params.yaml"]["data"]["model"]["kind"] == "instruct"}
    diff = subprocess.run([sys.executable, "-m", "evolab.evaluation.diff", "--json", f"{names[0]}:results/tuned",
                           f"{names[2]}:results/tuned"], cwd=project, capture_output=True, text=True)
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["tasks"] == 4

    # The ablation report, from DVC and from MLflow: the same tables.
    reports = {}
    for source in ("dvc", "mlflow"):
        out = subprocess.run([sys.executable, "-m", "evolab.reporting.report", "--source", source], cwd=project,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        reports[source] = out.stdout.split("\n", 3)[3]  # after the title and the source line
    assert reports["dvc"] == reports["mlflow"]
    assert "| 0 |" in reports["dvc"] and "| 2 |" in reports["dvc"] and "Evol stop on the dev set picks round" in reports["dvc"]
    dvc(project, "repro", "reports/dvc.yaml")  # the report stage writes the markdown, the CSV (a DVC plot) and the PNG
    assert (project / "reports/ablation.md").read_text().split("\n", 3)[3].strip() == reports["dvc"].strip()
    for plot, data in (("rounds", True), ("similarity", True), ("controls", False)):  # no controls were run here
        assert (plot_description(project / f"reports/ablation_{plot}.png") != PLACEHOLDER) == data, plot


def test_verified_data_and_its_unverified_control_train_and_evaluate_in_one_experiment(project, teacher, student, env):
    """The task pool's first 8 tasks, answered by the scripted teacher (right or wrong by the request's seed),
    verified against their own tests with 2 attempts; the unverified control trains on the same items with
    their first answers. A rerun runs nothing but log."""
    args = ["exp", "run", *SMOKE, *teacher, *student, *overrides(
        "seed_data.path=evolab/data/tasks/train.jsonl", "profile.seeds=8", "rounds=0", "verify.mode=tests",
        "verify.attempts=2", "controls.families=[unverified]", "profile.answer_max_tokens=512")]
    first = dvc(project, *args, env=env)
    assert {"controls@sets", "control_train@unverified-samples", "control_eval@unverified-samples", "verify"} <= ran(first)

    pool = read_jsonl(project / "evolab/data/tasks/train.jsonl")[:8]

    def right(task: dict, seed: int) -> bool:
        return answers_right(task["reference"].split('    """\n')[0] + '    """\n', seed)

    expected = {}
    for task in pool:  # attempt 1: the seed stage's answer (seed 42); attempt 2: verify's
        first_right = right(task, item_seed(42, 0, task["id"]) + 1)
        expected[f"{task['id']}@r0"] = ["pass"] if first_right else ["fail", "pass" if right(
            task, attempt_seed(42, f"{task['id']}@r0", 2)) else "fail"]
    results = {r["id"]: [a.split(":")[0] for a in r["attempts"]] for r in read_jsonl(project / "results/verification.jsonl")}
    assert results == expected
    kept = [i for i, attempts in expected.items() if attempts[-1] == "pass"]
    assert 0 < len(kept) < 8 and any(len(a) == 2 for a in expected.values())  # the scripted draw covers each case
    assert [r["id"] for r in read_jsonl(project / "data/train.jsonl")] == kept
    control = read_jsonl(project / "data/controls/unverified-samples.jsonl")
    verified = {r["id"]: r for r in read_jsonl(project / "data/verified.jsonl")}
    assert [r["id"] for r in control] == kept and all(r["output"] == verified[r["id"]]["first_output"] for r in control)
    assert sum(r["output"] != verified[r["id"]]["output"] for r in control) == sum(len(expected[i]) == 2 for i in kept)
    stats = json.loads((project / "metrics/verify.json").read_text())
    assert (stats["items"], stats["passed"], stats["tests_source"]) == (8, len(kept), {"task": 8})
    for name in ("unverified-samples",):
        train = json.loads((project / f"metrics/controls/{name}/train.json").read_text())
        assert train["examples"] == len(kept) and json.loads((project / f"metrics/controls/{name}/eval.json").read_text())["problems"] == 4

    again = dvc(project, *args, env=env)
    assert ran(again) == {"log"}

    report = subprocess.run([sys.executable, "-m", "evolab.reporting.report", "--out", "reports/ablation"], cwd=project,
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    with open(project / "reports/ablation_controls.csv") as handle:
        rows = {row["training_set"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"merged", "unverified-samples"}
    assert int(float(rows["unverified-samples"]["samples"])) == len(kept)


def test_a_queued_rounds_sweep_evolves_each_round_once_and_queueing_it_again_runs_nothing(project, teacher, student, env):
    """The README's sweep: `dvc exp run --queue -S 'rounds=1,2'`, then the queue (`--run-all`, in the foreground).
    Queued experiments run in copies under .dvc/tmp/exps that DVC deletes: their MLflow runs and artifacts must
    land in the project's store. Seeds 000-003: round 1 keeps 2 evolutions, round 2 one more, so the two
    experiments train on different sets."""
    queue = ["exp", "run", "--queue", *SMOKE, *teacher, "-S", "rounds=1,2", *student]

    def run_queue() -> list[str]:
        dvc(project, *queue, env=env)
        result = dvc(project, "exp", "run", "--run-all", "-j", "1", env=env)
        return sorted(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))

    first = run_queue()
    for stage in ("seed", "evolve@r1", "evolve@r2", "baseline"):
        assert first.count(stage) == 1, first  # each round evolved once for the whole sweep
    for stage in ("merge", "train", "eval", "dev", "log"):
        assert first.count(stage) == 2, first
    client, runs = mlflow_runs(project)
    assert sorted((r.data.params["rounds"], r.data.metrics["data.merged_items"]) for r in runs) == [("1", 6), ("2", 7)]

    assert run_queue() == ["log", "log"]  # log always runs and finds both experiments already logged

    client, runs = mlflow_runs(project)
    for run in runs:
        similarity = Path(client.download_artifacts(run.info.run_id, "results/similarity.jsonl", str(project.parent)))
        rounds = {json.loads(line)["round"] for line in similarity.read_text().splitlines()}
        assert rounds == set(range(int(run.data.params["rounds"]) + 1))  # per item, by round
    assert not list((project / ".dvc/tmp/exps").glob("*/mlflow.db"))


def test_each_method_runs_beside_code_evol_and_switching_back_runs_nothing(project, teacher, student, env):
    """`-S method=...` on the smoke profile: OSS-Instruct, WaveCoder and MagicoderS next to Code Evol-Instruct,
    each keeping exactly what the scripted teacher's answers let it keep."""
    base = [*SMOKE, "-S", "rounds=1", *teacher, *student]
    after_data = {"merge", "log"} | AFTER_MERGE
    evol = dvc(project, "exp", "run", *base, env=env)
    assert ran(evol) == {"seed", "evolve@r1", "baseline"} | after_data
    assert merged_ids(project) == ["seed-000@r0", "seed-001@r0", "seed-002@r0", "seed-003@r0", "seed-000@r1", "seed-001@r1"]

    oss = dvc(project, "exp", "run", *base, "-S", "method=oss_instruct", env=env)
    # seed reruns (no teacher call: a method that does not evolve keeps the seed file as it is)
    assert ran(oss) == {"seed", "generate@oss_instruct"} | after_data
    generated = read_jsonl(project / "data/generated/oss_instruct.jsonl")
    assert len(generated) == 4 and all(r["kept"] and r["part"] == "oss_instruct" for r in generated)
    trained = read_jsonl(project / "data/train.jsonl")
    assert len(trained) == 4 and all(r["instruction"].startswith("Write a solution to the following coding problem:\nWrite a function `f_")
                                     for r in trained)

    # WaveCoder: the scripted discriminator rejects every code_translation case. seed reruns (its sampling is
    # the method's), again with no teacher call.
    wave = dvc(project, "exp", "run", *base, "-S", "method=wavecoder", "-S", "method.coreset.pool=200", env=env)
    assert ran(wave) == {"seed", "generate@wavecoder"} | after_data
    cases = read_jsonl(project / "data/generated/wavecoder.jsonl")
    assert len(cases) == 4 and [r["kept"] for r in cases] == [r["task"] != "code_translation" for r in cases]
    assert {r["reason"] for r in cases if not r["kept"]} <= {"discriminator_no"}
    stats = json.loads((project / "metrics/generate/wavecoder.json").read_text())
    assert stats["kept"] == sum(t["kept"] for t in stats["tasks"].values()) == len(read_jsonl(project / "data/train.jsonl"))

    # MagicoderS: round 1 comes from code_evol's run (the same evolution settings), the OSS-Instruct data is
    # generated again under its own parameter key (from the response cache); two training phases.
    magic = dvc(project, "exp", "run", *base, "-S", "method=magicoder_s", env=env)
    assert ran(magic) == {"generate@oss_instruct", "combine@parts"} | after_data
    train_metrics = json.loads((project / "metrics/train.json").read_text())
    parts = [r["part"] for r in read_jsonl(project / "data/train.jsonl")]
    assert parts.count("oss_instruct") == 4 and parts.count("code_evol") == 6
    assert [p["examples"] for p in train_metrics["phases"]] == [4, 6]
    assert train_metrics["steps"] == sum(p["steps"] for p in train_metrics["phases"])

    back = dvc(project, "exp", "run", *base, "-S", "method=oss_instruct", env=env)
    assert ran(back) == {"log"}

    _, runs = mlflow_runs(project)
    assert sorted(r.data.params["method.name"] for r in runs) == ["code_evol", "magicoder_s", "oss_instruct", "wavecoder"]
    assert all(0 < r.data.metrics["similarity.all.item_to_test_tfidf.mean"] < 1 for r in runs)

    # The report's Methods table, the same from DVC and from MLflow, and its per-method similarity plot.
    tables = {}
    for source in ("dvc", "mlflow"):
        out = subprocess.run([sys.executable, "-m", "evolab.reporting.report", "--source", source, "--out", f"reports/{source}"],
                             cwd=project, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        tables[source] = out.stdout[out.stdout.index("## Methods"):out.stdout.index("## Per-round")]
        assert plot_description(project / f"reports/{source}_methods.png") != PLACEHOLDER
    assert tables["dvc"] == tables["mlflow"]
    rows = [line for line in tables["dvc"].splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["code_evol", "magicoder_s", "oss_instruct", "wavecoder"]


def test_a_queued_experiment_whose_worker_is_killed_runs_again_from_its_caches(project, tmp_path, scripted_teacher, student, env):
    """`dvc queue start`'s worker SIGKILLed while a queued experiment evolves its first round (the scripted teacher
    answers one request at a time, 0.5 s each). DVC leaves the task 'Running' with no worker; `dvc queue kill NAME`
    marks it failed (docs/troubleshooting.md), and the experiment queued again finishes without running `seed`
    again (DVC's run-cache) nor asking the teacher again what it had answered before the kill (evolab's response
    cache); it is logged once."""
    import signal
    import time

    import psutil

    from evolab.core.cache import ResponseCache

    scripted_teacher.latency = 0.5
    queue = ["exp", "run", "--queue", *SMOKE, "-S", "rounds=1", *overrides(*scripted(scripted_teacher.base_url)),
             "-S", "teacher.concurrency=1", *student]

    def run(*args: str) -> subprocess.CompletedProcess:
        return dvc(project, *args, env=env)

    run(*queue, "--name", "killed")
    # A worker in the background (it keeps inherited pipes open: no output captured here).
    subprocess.run([DVC, "queue", "start", "-j", "1"], cwd=project, env=with_dvc_on_path(env), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def workers() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline", "cwd"]):
            if "queue-worker" in " ".join(process.info["cmdline"] or []) and process.info["cwd"] == str(project):
                found += [process, *process.children(recursive=True)]
        return found

    answers = tmp_path / "cache/responses.sqlite"
    deadline = time.monotonic() + 600
    try:
        while not answers.exists():
            assert time.monotonic() < deadline, "the queued experiment never asked the teacher"
            time.sleep(0.2)
        responses = ResponseCache(answers)
        while len(responses) < 5:  # 4 seed answers, then the first evolution: 3 are still to ask
            assert time.monotonic() < deadline, "the queued experiment never reached evolve@r1"
            time.sleep(0.1)
    finally:  # on a failure too: no worker outlives the test
        scripted_teacher.latency = 0.0
        doomed = workers()
        killed = [" ".join(process.cmdline()) for process in doomed]
        for process in doomed:  # the worker, its experiment and the stage running in it
            process.send_signal(signal.SIGKILL)
        psutil.wait_procs(doomed, timeout=30)
    assert any("stages.evolve" in cmdline for cmdline in killed), killed
    assert re.search(r"killed\s+\S+\s+\S+\s+Running", run("queue", "status").stdout)  # a task with no worker

    run("queue", "kill", "killed")
    assert re.search(r"killed\s+\S+\s+\S+\s+Failed", run("queue", "status").stdout)
    run(*queue, "--name", "again")
    rerun = run("exp", "run", "--run-all", "-j", "1")
    stages = ran(rerun)
    assert "seed" not in stages and {"evolve@r1", "train", "eval", "log"} <= stages, stages

    client, runs = mlflow_runs(project)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    assert metrics["evolve.r1.cached_calls"] >= 1 and metrics["evolve.r1.items"] == 4, metrics
    assert metrics["evolve.r1.cached_calls"] + metrics["evolve.r1.live_calls"] == 4 + 2 + 2  # evolve, judge, answer
    assert "again" in run("exp", "list", "--name-only").stdout.split()
