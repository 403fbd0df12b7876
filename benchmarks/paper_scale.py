"""The data path at the papers' sizes: every stage that needs no GPU (seed, the evolution rounds, merge, verify,
decontaminate, similarity, controls, log, report) run on WizardCoder's recipe at growing seed counts, against a
scripted OpenAI-compatible teacher on 127.0.0.1 with answers of a realistic length and a fixed latency.

    python benchmarks/paper_scale.py                         # 250, 2,500 and 20,000 seeds: reports/paper_scale.{md,json}
    python benchmarks/paper_scale.py --seeds 100 400 --out /tmp/scale   # a quick look

WizardCoder (§4.2) evolves the 20k Code Alpaca seeds for 3 rounds into about 78k items; 20,000 seeds and 3
rounds make 80,000 records (seeds and three rounds of 20,000 evolutions each), 250 and 2,500 seeds make 1k and
10k. Each stage runs as `dvc repro` runs it (its command from dvc.yaml, in a scratch copy of the project, one
process per stage): its wall time, its peak resident memory (the process and the children it waited for, from
wait4), and the teacher requests the server received while it ran. Each stage's growth exponent is the slope of
log(seconds) against log(items) over the sizes. The stages that need a student model's training or evaluation
(train, eval, dev, baseline and the controls' training and evaluation) are left out; their metrics files are
written as stubs so that log and report run.

The seeds are made up (a seeded generator of Code Alpaca-like instructions, each distinct); the teacher evolves
as evolab's scripted teacher does (evolab/testing/teacher.py: some evolutions kept, some eliminated) and answers
with 150 to 350 words of code and explanation.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kill_stages import copy_cache, scratch_project  # noqa: E402 - the benchmark next door

from evolab.core.models import cache_dir  # noqa: E402
from evolab.reporting.dag import Stage  # noqa: E402
from evolab.reporting.dag import stages as dag  # noqa: E402
from evolab.testing.teacher import ScriptedTeacher, digest  # noqa: E402

REPORT = ROOT / "reports/paper_scale"
GPU_STAGES = ("train", "eval", "dev", "baseline", "control_train@", "control_eval@")
VERBS = ["sort", "merge", "count", "reverse", "parse", "validate", "compress", "filter", "group", "rank", "flatten",
         "normalise", "encode", "split", "search", "schedule", "summarise", "transpose", "deduplicate", "rotate"]
THINGS = ["a list of integers", "a string of words", "a binary tree", "a CSV file", "a dictionary of scores",
          "a matrix", "a linked list", "a JSON document", "a graph of cities", "a log file", "a queue of tasks",
          "a set of intervals", "an array of floats", "a stream of events", "a table of employees"]
HOW = ["in place", "without extra memory", "in one pass", "recursively", "with a generator", "using a heap",
       "using a stack", "with memoisation", "in linear time", "using binary search", "with a hash map", "lazily"]
WORDS = ("the function walks the input once and keeps a running result in a local variable which it returns at the "
         "end so that callers can rely on a value of the same type as the input and the edge cases of an empty "
         "input or a single element are handled by the same loop without a special branch").split()


def seed_rows(n: int) -> list[dict[str, str]]:
    """n distinct Code Alpaca-like seeds (instruction, output), from a seeded generator."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        verb, thing, how = rng.choice(VERBS), rng.choice(THINGS), rng.choice(HOW)
        rows.append({"instruction": f"Write a Python function `{verb}_{i}` that takes {thing} and returns it "
                                    f"{verb}ed {how}; item {i} needs {rng.randint(2, 99)} cases.",
                     "output": f"def {verb}_{i}(data):\n    return sorted(data)\n"})
    return rows


class PaperTeacher(ScriptedTeacher):
    """The scripted teacher, with answers of 150 to 350 words (code and explanation), as a chat model gives, and
    nine evolutions in ten a harder question that elimination keeps (WizardLM's elimination drops few)."""

    def answer(self, body: dict[str, Any], chat: bool) -> tuple[str, str]:
        text, kind = super().answer(body, chat)
        request = body["messages"][-1]["content"] if chat else ""
        rng = random.Random(digest(request))
        if kind == "evolve" and rng.random() < 0.9:
            question = request.split("\n\n")[-1]
            return f"{question} It must also handle case {rng.randint(1, 10**6)} {rng.choice(HOW)}.", kind
        if kind != "answer":
            return text, kind
        words = [rng.choice(WORDS) for _ in range(rng.randint(150, 350))]
        return f"{text}\n\n{' '.join(words)}.", kind


def timed(cmd: str, cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak resident GB of the process and the children it waited for, exit status)."""
    start = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, shell=True, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 2**20, proc.returncode


def stub_gpu_metrics(repo: Path) -> None:
    """The student's metrics (the merged set's and each control's), which this benchmark does not compute: stubs,
    so that log and report run."""
    controls = yaml.safe_load((repo / "params.yaml").read_text())["control_runs"].values()
    evals = ["metrics/eval.json", "metrics/baseline.json", "metrics/dev.json", *(c["eval_metrics"] for c in controls)]
    trains = ["metrics/train.json", *(c["train_metrics"] for c in controls)]
    for name in evals + trains:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"humaneval": {"pass@1": 0.0}, "stub": 1} if name in evals else {"steps": 0, "stub": 1}))
    (repo / "metrics/train_loss.csv").write_text("step,loss\n1,1.0\n")


def run_size(seeds: int, args: argparse.Namespace, work: Path, log: Path) -> list[dict[str, Any]]:
    """Every stage without a GPU at one size, in the DAG's order."""
    repo = scratch_project(work / f"n{seeds}")
    (repo / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in seed_rows(seeds)))
    teacher = PaperTeacher(args.latency)
    env = {**os.environ, "EVOLAB_CACHE": str(copy_cache(cache_dir(), work / f"cache{seeds}")), "OPENAI_API_KEY": "none",
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    overrides = ["teacher=openai", f"teacher.base_url={teacher.base_url}", f"teacher.concurrency={args.concurrency}",
                 "seed_data.path=seeds.jsonl", f"profile.seeds={seeds}", "rounds=3", "controls=paper"]
    subprocess.run([sys.executable, "-m", "evolab.core.config", *overrides], cwd=repo, env=env, check=True,
                   capture_output=True)
    stages = [s for s in dag(repo) if not s.name.startswith(GPU_STAGES)]
    stages.append(Stage("report", f"{sys.executable} -m evolab.reporting.report --source mlflow --out report", [], []))
    rows = []
    for stage in stages:
        if stage.name == "log":
            stub_gpu_metrics(repo)
        before = sum(teacher.requests.values())
        seconds, peak_gb, status = timed(stage.cmd, repo, env, log)
        items = len((repo / "data/merged.jsonl").read_text().splitlines()) if (repo / "data/merged.jsonl").exists() else 0
        rows.append({"seeds": seeds, "stage": stage.name, "seconds": round(seconds, 2), "peak_gb": round(peak_gb, 3),
                     "teacher_calls": sum(teacher.requests.values()) - before, "status": status, "merged_items": items})
        print(json.dumps(rows[-1]), flush=True)
        if status != 0:
            raise SystemExit(f"{stage.name} failed at {seeds} seeds: see {log}")
    teacher.server.shutdown()
    return rows


def exponent(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of log(y) on log(x)."""
    points = [(math.log(x), math.log(max(y, 1e-3))) for x, y in points if x > 0]
    if len(points) < 2:
        return None
    mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: its figures at each size and its growth exponents in the records it handles (4 per seed)."""
    out = []
    for stage in dict.fromkeys(r["stage"] for r in rows):
        mine = [r for r in rows if r["stage"] == stage]
        out.append({"stage": stage, "sizes": {r["seeds"] * 4: {k: r[k] for k in ("seconds", "peak_gb", "teacher_calls")}
                                              for r in mine},
                    "time_exponent": exponent([(r["seeds"] * 4, r["seconds"]) for r in mine]),
                    "memory_exponent": exponent([(r["seeds"] * 4, r["peak_gb"]) for r in mine])})
    return out


# n log n grows 9.8-fold from 10k to 80k records, an exponent of 1.10 over that span; a stage whose exponent over the
# two largest sizes is above 1.2 (that, with room for timing noise) grows worse than n log n.
N_LOG_N = 1.2
MEMORY_GB = 8.0


def verdict(stage: dict[str, Any]) -> str:
    """Whether a stage stays within n log n (its exponent over the two largest sizes) and 8 GB at the largest."""
    sizes = sorted(stage["sizes"])
    if len(sizes) < 2:
        return ""
    top = exponent([(n, stage["sizes"][n]["seconds"]) for n in sizes[-2:]])
    memory = stage["sizes"][sizes[-1]]["peak_gb"]
    ok = top <= N_LOG_N and memory <= MEMORY_GB
    return f"{'yes' if ok else '**no**'} ({top:.2f}, {memory:.1f} GB)"


def render(report: dict[str, Any]) -> str:
    sizes = sorted({n for s in report["stages"] for n in s["sizes"]})
    head = " | ".join(f"{n:,} records: s / GB / calls" for n in sizes)
    lines = ["# The data path at paper size", "", report["note"], "",
             f"Growth exponent: the slope of log(seconds) on log(records) over all sizes; within n log n and {MEMORY_GB:.0f} GB: "
             f"the exponent over the two largest sizes at most {N_LOG_N} and the peak at the largest at most {MEMORY_GB:.0f} GB.",
             "", f"| stage | {head} | time exponent | memory exponent | within n log n and 8 GB |",
             "|---|" + "---|" * (len(sizes) + 3)]
    for s in report["stages"]:
        cells = [f"{s['sizes'][n]['seconds']:.1f} / {s['sizes'][n]['peak_gb']:.2f} / {s['sizes'][n]['teacher_calls']:,}"
                 if n in s["sizes"] else "" for n in sizes]
        fmt = lambda e: "" if e is None else f"{e:.2f}"  # noqa: E731
        lines.append(f"| {s['stage']} | {' | '.join(cells)} | {fmt(s['time_exponent'])} | {fmt(s['memory_exponent'])} | "
                     f"{verdict(s)} |")
    return "\n".join(lines) + "\n" + report.get("findings", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[250, 2500, 20000])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per teacher answer")
    parser.add_argument("--concurrency", type=int, default=64, help="teacher requests in flight")
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--render", action="store_true", help="write OUT.md again from OUT.json (its `findings` too)")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.out.with_suffix(".json").read_text())
        return args.out.with_suffix(".md").write_text(render({**report, "stages": summary(report["rows"])}))
    rows: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="paper-scale-") as tmp:
        for seeds in args.seeds:
            rows += run_size(seeds, args, Path(tmp), args.out.with_suffix(".log"))
            report = {"note": f"`python benchmarks/paper_scale.py --seeds {' '.join(map(str, args.seeds))}` on "
                              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; teacher latency {args.latency} s, "
                              f"{args.concurrency} requests in flight.", "rows": rows, "stages": summary(rows)}
            args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
            args.out.with_suffix(".md").write_text(render(report))


if __name__ == "__main__":
    main()
