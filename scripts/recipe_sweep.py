"""The LoRA recipe for small data, chosen on the dev set (evolab-dev) and the training loss, never on HumanEval.

    python scripts/recipe_sweep.py --data data/train.jsonl   # a run's training set; writes reports/recipe_sweep.{md,json}
    python scripts/recipe_sweep.py --points 2e-5:1:16 2e-4:1:16 1e-3:1:16 1e-3:3:16   # chosen recipes, not the grid

Trains the student on the same items with each learning rate x epochs x LoRA rank of the grid, with the
pipeline's own code (evolab.training.sft.train, the GGUF LoRA conversion, the eval stage's backend and
evaluate()), scores each adapter greedily on all dev problems and pairs it against the untuned student
(won / lost, exact McNemar p). The rule that picks the recipe is written in `choose` and applied here.
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from finetune_diagnosis import score_run

from evolab.core.config import compose, resolve
from evolab.core.models import resolve_gguf
from evolab.core.records import read_items
from evolab.evaluation.diff import mcnemar_p
from evolab.evaluation.harness import evaluate
from evolab.evaluation.sandbox import resolve_sandbox
from evolab.evaluation.student import student_backend
from evolab.evaluation.suites import load_benchmark
from evolab.training.gguf_lora import peft_to_gguf
from evolab.training.sft import train

REPORT = Path("reports/recipe_sweep")


def choose(results: dict[str, dict[str, Any]], current: str) -> str:
    """The recipe with the best dev pass@1; a tie goes to the current recipe, then to the fewest steps x lr
    (the gentlest update): on 24 problems a one-problem lead is noise, so nothing moves without a lead."""
    best = max(row["pass1"] for name, row in results.items() if name != "untuned")
    tied = [name for name, row in results.items() if name != "untuned" and row["pass1"] == best]
    if current in tied:
        return current
    return min(tied, key=lambda name: results[name]["train"]["steps"] * results[name]["recipe"]["learning_rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/train.jsonl"), help="the training items (a run's data/train.jsonl)")
    parser.add_argument("--lr", type=float, nargs="+", default=[2e-5, 2e-4, 1e-3])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rank", type=int, nargs="+", default=[16])
    parser.add_argument("--points", nargs="+", metavar="LR:EPOCHS:RANK",
                        help="instead of the grid, these recipes, e.g. 2e-4:1:16 1e-3:3:16")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides of the composition, e.g. profile=gain_cpu model=gemma-3-270m")
    parser.add_argument("--out", type=Path, default=REPORT, help="report path without suffix")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evolab-sweep-"))
    params = resolve(compose(args.set, output=work / "params.yaml"))
    model, recipe = params.model, params.train
    eval_cfg = replace(params.eval, sandbox=resolve_sandbox(params.eval.sandbox))
    dev = load_benchmark("evolab-dev")
    items = read_items(args.data)
    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}

    def score(name: str, tuned: Path | None) -> None:
        backend = student_backend(eval_cfg, model, "lora" if tuned else None, tuned or Path("models/tuned"))
        metrics = evaluate(dev, dev.problems, backend, "tuned" if tuned else model.kind, eval_cfg, recipe, work / name,
                           log=lambda line: None)
        results[name] = score_run(work / name, metrics)
        print(f"{name}: dev pass@1 {results[name]['pass1']:.3f}", flush=True)

    score("untuned", None)
    points = ([(float(a), int(b), int(c)) for a, b, c in (p.split(":") for p in args.points)] if args.points
              else list(itertools.product(args.lr, args.epochs, args.rank)))
    for lr, epochs, rank in points:
        name = f"lr {lr:g}, {epochs} epoch{'s' * (epochs > 1)}, r {rank}"
        cfg = replace(recipe, learning_rate=lr, epochs=epochs, lora=replace(recipe.lora, r=rank, alpha=2 * rank))
        out = work / "models" / f"lr{lr:g}-e{epochs}-r{rank}"
        metrics = train([items], model, cfg, out, work / "ckpt" / out.name, params.seed).metrics
        peft_to_gguf(out / "adapter", resolve_gguf(model.gguf), out / "adapter.gguf")
        score(name, out)
        results[name]["train"] = {k: metrics[k] for k in ("steps", "first_loss", "last_loss", "train_loss", "tokens")}
        results[name]["recipe"] = {"learning_rate": lr, "epochs": epochs, "r": rank}
    untuned = results["untuned"]["passed"]
    for row in results.values():
        won = sum(b and not a for a, b in zip(untuned, row["passed"]))
        lost = sum(a and not b for a, b in zip(untuned, row["passed"]))
        row.update(won=won, lost=lost, mcnemar_p=mcnemar_p(won, lost))
    current = f"lr {recipe.learning_rate:g}, {recipe.epochs} epoch{'s' * (recipe.epochs > 1)}, r {recipe.lora.r}"
    command = (f"--data {args.data}" + (f" --points {' '.join(args.points)}" if args.points else "")
               + (f" --set {' '.join(args.set)}" if args.set else ""))
    student = f"{model.name} ({model.kind}) in the {recipe.template} template"
    report = {"command": command, "data": str(args.data), "items": len(items), "problems": len(dev.problems),
              "student": student, "profile": params.profile.name, "current": current,
              "chosen": choose(results, current), "minutes": round((time.perf_counter() - start) / 60, 1), "results": results}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(report))
    print(render(report))


def render(r: dict[str, Any]) -> str:
    lines = ["# The LoRA recipe for small data: a sweep on the dev set", "",
             f"`python scripts/recipe_sweep.py {r['command']}` ({r['minutes']} min): {r['items']} training items, "
             f"student {r['student']}, global batch 4, cosine schedule; "
             f"each adapter scored greedily on the {r['problems']} dev problems (evolab-dev), 768 new tokens, and paired "
             "against the untuned student. HumanEval played no part.", "",
             "| recipe | dev pass@1 | won / lost vs untuned | McNemar p | steps | loss first → last (mean) | mean answer tokens |",
             "|---|---|---|---|---|---|---|"]
    for name, v in r["results"].items():
        t = v.get("train")
        steps, loss = (t["steps"], f"{t['first_loss']:.3f} → {t['last_loss']:.3f} ({t['train_loss']:.3f})") if t else ("-", "-")
        lines.append(f"| {name} | {v['pass1']:.3f} | {v['won']} / {v['lost']} | {v['mcnemar_p']:.3g} | {steps} | {loss} | "
                     f"{v['mean_tokens']} |")
    lines += ["", f"Current recipe (conf/train/lora_cpu.yaml with profile {r['profile']}): {r['current']}. "
              f"Chosen by `choose` (best dev pass@1; a tie keeps the current recipe, else the gentlest): **{r['chosen']}**.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
