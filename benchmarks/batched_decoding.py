"""Batched greedy decoding in llama.cpp (the llama_cpp backend's `parallel`) against one sequence at a time.

    python benchmarks/batched_decoding.py                  # writes reports/batched_decoding.{md,json}
    python benchmarks/batched_decoding.py --parallel 1 8   # fewer settings

On the evol-stop development set (evolab-dev, 24 problems; never HumanEval, since this chooses a setting),
the untuned default student answers evalplus's request greedily at 768 tokens through the evaluation
harness, once per `parallel` setting, with no response cache. parallel 1 is llama-cpp-python's
create_chat_completion one request after another, what a user of the library would run. Per setting:
generation seconds, tokens/s and its ratio to parallel 1, answers identical to parallel 1's, pass@1 and
the paired test against parallel 1 (won / lost / exact McNemar p).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from evolab.backends import make_backend
from evolab.core.config import load
from evolab.core.records import read_jsonl
from evolab.core.schema import Experiment
from evolab.evaluation.diff import mcnemar_p
from evolab.evaluation.harness import evaluate
from evolab.evaluation.sandbox import resolve_sandbox
from evolab.evaluation.suites import load_benchmark

REPORT = Path("reports/batched_decoding")


def run(parallel: int, params: Experiment, work: Path) -> dict[str, Any]:
    eval_cfg, model = params.eval, params.model
    benchmark = load_benchmark(params.evol_stop.benchmark)
    backend = make_backend({"backend": "llama_cpp", "model": model.gguf, "n_ctx": 4096, "parallel": parallel})
    out = work / f"parallel_{parallel}"
    metrics = evaluate(benchmark, benchmark.problems, backend, model.kind,
                       replace(eval_cfg, sandbox=resolve_sandbox(eval_cfg.sandbox)), params.train, out,
                       log=lambda line: None)
    samples = read_jsonl(out / "samples.jsonl")
    seconds = metrics["seconds"]["generate"]
    return {"parallel": parallel, "problems": len(samples), "seconds": seconds,
            "completion_tokens": metrics["completion_tokens"],
            "tokens_per_s": round(metrics["completion_tokens"] / seconds, 1),
            "passed": {s["task_id"]: bool(s["passed"]) for s in samples},
            "answers": {s["task_id"]: s["response"] for s in samples}}


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = rows[0]
    table = []
    for row in rows:
        tasks = list(base["passed"])
        won = sum(row["passed"][t] and not base["passed"][t] for t in tasks)
        lost = sum(base["passed"][t] and not row["passed"][t] for t in tasks)
        table.append({
            "parallel": row["parallel"], "seconds": row["seconds"], "tokens_per_s": row["tokens_per_s"],
            "speedup": round(row["tokens_per_s"] / base["tokens_per_s"], 2),
            "identical_answers": sum(row["answers"][t] == base["answers"][t] for t in tasks),
            "pass@1": round(sum(row["passed"].values()) / len(tasks), 3),
            "won": won, "lost": lost, "mcnemar_p": round(mcnemar_p(won, lost), 3), "problems": len(tasks)})
    return table


def render(table: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = ["# Batched greedy decoding in llama.cpp (`parallel`)", "",
             "`python benchmarks/batched_decoding.py` on this machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
             "The untuned default student answers evalplus's request (768 tokens, greedy) on the 24 evolab-dev problems.",
             "parallel 1 is llama-cpp-python's create_chat_completion one request at a time; won/lost against it.", "",
             "| parallel | seconds | tokens/s | × parallel 1 | answers identical | pass@1 | won / lost (p) |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for r in table:
        lines.append(f"| {r['parallel']} | {r['seconds']} | {r['tokens_per_s']} | {r['speedup']} | "
                     f"{r['identical_answers']}/{r['problems']} | {r['pass@1']:.3f} | {r['won']} / {r['lost']} (p = {r['mcnemar_p']}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()
    params = load()
    settings = [1] + [p for p in args.parallel if p != 1]
    with tempfile.TemporaryDirectory() as work:
        rows = [run(p, params, Path(work)) for p in settings]
    table = compare(rows)
    info = {"cpus": os.cpu_count(), "machine": platform.machine(), "model": params.model.gguf}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.with_suffix(".json").write_text(json.dumps({"info": info, "table": table}, indent=1) + "\n")
    REPORT.with_suffix(".md").write_text(render(table, info))
    print(render(table, info))


if __name__ == "__main__":
    main()
