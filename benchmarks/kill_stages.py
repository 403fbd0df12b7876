"""Every stage of the DAG killed with SIGKILL half-way and run again, on the smoke profile in a scratch copy of
the project: what the rerun did again, what was lost, what was doubled, and whether the result is the
uninterrupted run's.

    python benchmarks/kill_stages.py          # reports/kill_stages.{md,json}, ~15 min on 2 cores

The stages, their commands and their outputs come from DVC (`dvc.yaml` as the composed params make it), in
the DAG's order. The teacher is a fake OpenAI-compatible server on 127.0.0.1 (benchmarks/load_faults.py's,
with a latency and no faults, so that a kill lands mid-stage); the student is the real embedded model. Each
stage runs three times from the same inputs and the same response cache: uninterrupted (the reference), then
killed (on its progress line at half of its work, or at half of the reference's wall time for a stage that
prints none), then again. Counted:

- work units: teacher calls (the fake server's count of distinct requests), model generations (the eval
  stages' live/cached counts), optimizer steps (train), or the whole stage where nothing is kept between runs;
- done before the kill, and done again by the rerun (what a kill costs beyond the work in flight);
- lost (records of the reference missing after the rerun) and duplicates (ids written twice);
- outputs after the kill: every declared output absent or complete (written whole, never half);
- identical: the rerun's outputs equal the reference's (metrics compared without their timing and
  live/cached counters).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_faults import FakeTeacher  # noqa: E402 - the benchmark next door

from evolab.reporting.dag import Stage as StageSpec  # noqa: E402
from evolab.reporting.dag import stages as stages_in_order  # noqa: E402

REPORT = ROOT / "reports/kill_stages"
# Counters that differ between a run and its resumed rerun by design, and the base model's path in an adapter's
# config (each run here has its own cache folder): not part of "identical".
VOLATILE = {"seconds", "live_calls", "cached_calls", "live_tokens", "live_generations", "cached_generations", "train_runtime",
            "tokens_per_second", "samples_per_second", "steps_per_second", "wall_seconds", "resumed_from_step",
            "started", "finished", "peak_rss_gb", "train_seconds", "base_model_name_or_path"}
# Each control is trained and evaluated by the train and eval stages' code: killed there, not again per control.
SAME_CODE = ("control_train@", "control_eval@")
# Written beside a trained model: the pickled TrainingArguments (paths, timings) and peft's model card.
METADATA = {"training_args.bin", "README.md"}
STORE = ["mlflow.db", "mlartifacts", "mlruns"]
HALF = re.compile(r"(\d+)/(\d+)")


def scratch_project(work: Path) -> Path:
    """The tracked files in a new git repository (DVC reads dvc.yaml from it)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    repo = work / "repo"
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=k@localhost", "-c", "user.name=kill", "commit", "-qm", "scratch"]):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo


def dag(repo: Path) -> list[StageSpec]:
    """The stages DVC would run, dependencies first: name, command, declared outputs (metrics and plots too)."""
    return [replace(stage, outs=stage.outs + stage.metrics) for stage in stages_in_order(repo)
            if not stage.name.startswith(SAME_CODE)]


def cached_rows(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache / 'responses.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def copy_cache(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name == "models":
            os.symlink(item.resolve(), target / "models")
        elif item.is_file():
            shutil.copy2(item, target / item.name)
    return target


def clear(repo: Path, outs: list[str]) -> None:
    for out in outs:
        path = repo / out
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        path.with_name(f".{path.name}.partial").unlink(missing_ok=True)


def without_volatile(value: Any) -> Any:
    """JSON without the counters that differ by design; lists of names sorted (peft writes target_modules from a
    set, in an order that changes from process to process)."""
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        items = [without_volatile(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value


def fingerprint(repo: Path, outs: list[str]) -> dict[str, str]:
    """A digest per output file; JSON metrics without their volatile counters; the tuned model's weights only
    (its checkpoints folder and trainer state carry timings)."""
    digests = {}
    for out in outs:
        root = repo / out
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root] if root.exists() else []
        for path in files:
            name = str(path.relative_to(repo))
            if path.suffix == ".json":
                data = json.dumps(without_volatile(json.loads(path.read_text())), sort_keys=True).encode()
            elif path.suffix in {".csv", ".png", ".log"} or path.name.startswith(".") or path.name in METADATA:
                continue  # loss curves carry timings; plots their render; the rest describes the run, not its result
            else:
                data = path.read_bytes()
            digests[name] = hashlib.sha256(data).hexdigest()[:16]
    return digests


def records(repo: Path, outs: list[str]) -> list[str]:
    """The ids written to the stage's JSONL outputs (per file), for lost / duplicate counts."""
    ids = []
    for out in outs:
        root = repo / out
        for path in sorted(root.rglob("*.jsonl")) if root.is_dir() else [root] if root.suffix == ".jsonl" and root.exists() else []:
            for line in path.read_text().splitlines():
                record = json.loads(line)
                ids.append(f"{path.name}:{record.get('id') or record.get('task_id') or hashlib.md5(line.encode()).hexdigest()}")
    return ids


class Stage:
    """One stage's three runs in the scratch project."""

    def __init__(self, repo: Path, spec: StageSpec, teacher: FakeTeacher, cache: Path):
        self.repo, self.spec, self.teacher, self.cache = repo, spec, teacher, cache

    def start(self, cache: Path) -> subprocess.Popen:
        env = {**os.environ, "EVOLAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        return subprocess.Popen(self.spec.cmd, shell=True, cwd=self.repo, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def complete(self, cache: Path) -> dict[str, Any]:
        self.teacher.reset()
        start = time.perf_counter()
        proc = self.start(cache)
        output = proc.communicate()[0]
        if proc.returncode != 0:
            raise SystemExit(f"{self.spec.name} failed:\n{output[-3000:]}")
        return {"seconds": time.perf_counter() - start, "output": output, "teacher_calls": len(self.teacher.attempts),
                "answered": set(self.teacher.answered)}

    def killed(self, cache: Path, reference_seconds: float, progress: bool) -> dict[str, Any]:
        """Run, SIGKILL on the progress line at half its work (a stage that prints one) or at half the reference's
        time (one that does not), report where."""
        self.teacher.reset()
        proc = self.start(cache)
        lines: list[str] = []
        timer = threading.Timer(reference_seconds * (3 if progress else 0.5), lambda: kill(proc))
        timer.start()
        trigger = None
        for line in proc.stdout:
            lines.append(line)
            if (trigger := half_way(line)) is not None:
                kill(proc)
                break
        timer.cancel()
        proc.wait()
        return {"killed_at": trigger or f"{reference_seconds / 2:.1f} s of {reference_seconds:.1f} s",
                "timed": trigger is None, "exit": proc.returncode, "answered": set(self.teacher.answered),
                "output": "".join(lines)}


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def half_way(line: str) -> str | None:
    """A progress line at half of the stage's work (`answered 2/4`, `eval: 2/4`), or the first saved checkpoint."""
    if line.startswith("train: saved checkpoint-"):
        return line.strip()
    if (match := HALF.search(line)) and line.split(":")[0] in {"seed", "eval"} | {
            f"evolve@r{k}" for k in range(1, 10)} | {f"generate@{g}" for g in ("oss_instruct", "wavecoder")}:
        done, total = int(match[1]), int(match[2])
        return line.strip() if total > 1 and done >= total / 2 else None
    return None


def metrics_of(repo: Path, outs: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for out in outs:
        if out.endswith(".json") and (repo / out).exists():
            merged.update(json.loads((repo / out).read_text()))
    return merged


def measure(repo: Path, spec: StageSpec, teacher: FakeTeacher, cache: Path, work: Path) -> dict[str, Any]:
    stage = Stage(repo, spec, teacher, cache)
    outs = spec.outs
    before = cached_rows(cache)
    reference = stage.complete(copy_cache(cache, work / "cache_reference"))
    reference_prints = fingerprint(repo, outs)
    reference_ids = records(repo, outs)
    reference_metrics = metrics_of(repo, outs)

    clear(repo, outs + (STORE if spec.name == "log" else []))  # log's output is the MLflow store
    trial = copy_cache(cache, work / "cache_trial")
    progress = any(half_way(line) for line in reference["output"].splitlines())
    killed = stage.killed(trial, reference["seconds"], progress)
    after_kill = {out: (repo / out).exists() for out in outs}
    half_written = sorted(name for name, digest in fingerprint(repo, outs).items() if reference_prints.get(name) != digest)
    cached_at_kill = cached_rows(trial) - before
    rerun = stage.complete(trial)
    rerun_metrics = metrics_of(repo, outs)
    ids = records(repo, outs)
    doubled = (len(ids) - len(set(ids))) - (len(reference_ids) - len(set(reference_ids)))
    row = {"stage": spec.name, "seconds": round(reference["seconds"], 1), "killed_at": killed["killed_at"],
           "killed": killed["exit"] == -signal.SIGKILL, "outputs_after_kill": sum(after_kill.values()),
           "half_written": half_written, "lost": len(set(reference_ids) - set(ids)), "duplicates": doubled,
           "records": len(ids), "identical": fingerprint(repo, outs) == reference_prints,
           "differs": sorted(k for k, v in fingerprint(repo, outs).items() if reference_prints.get(k) != v)}
    row.update(work_units(spec, reference, killed, rerun, reference_metrics, rerun_metrics, cached_at_kill))
    shutil.copy2(trial / "responses.sqlite", cache / "responses.sqlite")  # the next stage starts from this state
    return row


def work_units(spec: StageSpec, reference: dict, killed: dict, rerun: dict, reference_metrics: dict,
               rerun_metrics: dict, cached_at_kill: int) -> dict[str, Any]:
    """What the stage's work is counted in, how much was done before the kill, and how much the rerun did again."""
    if reference["teacher_calls"]:
        return {"unit": "teacher calls", "total": reference["teacher_calls"], "done_before_kill": cached_at_kill,
                "in_flight_at_kill": len(killed["answered"]) - cached_at_kill,
                "done_again": len(rerun["answered"] & killed["answered"]),
                "rerun_did": rerun["teacher_calls"]}
    if "live_generations" in reference_metrics:
        total = reference_metrics["live_generations"]
        return {"unit": "generations", "total": total, "done_before_kill": cached_at_kill,
                "done_again": rerun_metrics["live_generations"] - (total - cached_at_kill),
                "rerun_did": rerun_metrics["live_generations"]}
    steps = [int(s) for s in re.findall(r"train: step (\d+)/", killed["output"])]
    if spec.name == "train" or steps:
        resumed = re.search(r"resuming\S* from checkpoint-(\d+)", rerun["output"])
        start = int(resumed[1]) if resumed else 0
        total = int(re.findall(r"train: step \d+/(\d+)", reference["output"])[-1])
        return {"unit": "optimizer steps", "total": total, "done_before_kill": max(steps, default=0),
                "resumed_from": start, "done_again": max(steps, default=0) - start, "rerun_did": total - start}
    return {"unit": "whole stage (no partial state)", "total": 1, "done_before_kill": 0, "done_again": 1 if killed["timed"] else 0,
            "rerun_did": 1}


def log_check(repo: Path) -> dict[str, Any]:
    """The MLflow store after the killed and rerun log stages: one finished run per experiment, with its metrics."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    keyed = [r for r in runs if "evolab_key" in r.data.tags]
    return {"mlflow_runs": len(runs), "logged_runs": len(keyed), "finished": sum(r.info.status == "FINISHED" for r in keyed),
            "with_metrics": sum(bool(r.data.metrics) for r in keyed)}


def render(report: dict[str, Any]) -> str:
    lines = ["# Every stage killed half-way and run again", "",
             f"`python benchmarks/kill_stages.py` on {report['machine']}, {report['date']}: {report['overrides']}; the "
             "teacher a fake OpenAI-compatible server on 127.0.0.1 (latency "
             f"{report['latency']} s), the student the embedded model. Each stage ran uninterrupted, then killed with SIGKILL "
             "on its progress line at half of its work (or at half of its uninterrupted time), then again; the "
             "three runs start from the same inputs and response cache. Total {:.0f} min.".format(report["minutes"]), "",
             "| stage | s | killed at | unit | total | done before kill | done again by the rerun | outputs left by the kill "
             "| lost | duplicates | identical to uninterrupted |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["stages"]:
        left = f"{r['outputs_after_kill']} complete" if not r["half_written"] else f"half-written: {r['half_written']}"
        lines.append(f"| {r['stage']} | {r['seconds']} | {r['killed_at']} | {r['unit']} | {r['total']} | {r['done_before_kill']} "
                     f"| {r['done_again']} | {left} | {r['lost']} | {r['duplicates']} | "
                     f"{'yes' if r['identical'] else 'no: ' + ', '.join(r['differs'])} |")
    log = report["log"]
    lines += ["", f"MLflow after the log stage's kill and rerun: {log['logged_runs']} experiment logged "
              f"({log['finished']} finished, {log['with_metrics']} with metrics; {log['mlflow_runs']} runs in the store).", "",
              "generate@* under load: `reports/load_faults.md` (10,000 items, SIGKILL at half).", "",
              "A `dvc queue start` worker killed mid-experiment is a test, not a row here: "
              "`tests/test_pipeline.py::test_a_queued_experiment_whose_worker_is_killed_runs_again_from_its_caches` "
              "SIGKILLs the worker, its experiment and the evolve stage in it; DVC leaves the task Running with no "
              "worker, `dvc queue kill` marks it failed, and the experiment queued again runs without `seed` (DVC's "
              "run-cache) and takes evolve@r1's finished calls from the response cache; one MLflow run, finished.", "",
              "Reading the units: teacher calls and generations are kept in the response cache as each finishes, so a "
              "rerun does again only what was in flight (\"done again\"); training resumes from its last complete "
              "checkpoint, so it does again the steps since; a stage with no partial state (merge, decontaminate, "
              "similarity, controls, log) runs whole again, which is seconds.", ""]
    return "\n".join(lines)


def main() -> None:
    from evolab.core.config import compose
    from evolab.core.models import resolve_gguf

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="evolab-kill-"))
    repo = scratch_project(work)
    teacher = FakeTeacher(0.0, 0.0, latency=0.3)
    overrides = ["profile=smoke", "rounds=1", "teacher=openai", f"teacher.base_url={teacher.base_url}", "teacher.model=fake",
                 "teacher.concurrency=1", "train.epochs=2", "train.save_steps=1", "controls=paper"]
    compose(overrides, conf_dir=repo / "conf", output=repo / "params.yaml")
    cache = work / "cache"
    cache.mkdir()
    os.symlink(resolve_gguf("qwen2.5-coder-0.5b-instruct").parent, cache / "models")
    rows = []
    for spec in dag(repo):
        print(f"kill_stages: {spec.name}", flush=True)
        if spec.name == "log":  # the controls were built (controls@sets), not trained: log the experiment without
            compose([o for o in overrides if not o.startswith("controls=")], conf_dir=repo / "conf", output=repo / "params.yaml")
        rows.append(measure(repo, spec, teacher, cache, work))
        print(f"kill_stages: {rows[-1]}", flush=True)
    report = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "overrides": " ".join(overrides[:2]),
              "latency": 0.3, "stages": rows, "log": log_check(repo), "minutes": (time.perf_counter() - started) / 60}
    report["passed"] = all(r["lost"] == 0 and r["duplicates"] == 0 and not r["half_written"] and r["killed"] for r in rows) \
        and report["log"]["logged_runs"] == 1 == report["log"]["finished"] == report["log"]["with_metrics"]
    REPORT.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    REPORT.with_suffix(".md").write_text(render(report))
    print(render(report))
    if not report["passed"]:
        raise SystemExit("a stage lost, doubled or half-wrote something: see the report")


if __name__ == "__main__":
    main()
