"""Why fine-tuning hurt the student: each candidate cause alone, on the dev set (evolab-dev), never HumanEval.

    python scripts/finetune_diagnosis.py            # writes reports/finetune_diagnosis.{md,json}
    python scripts/finetune_diagnosis.py --items 8  # a quicker look

The same first N seed instructions, trained with the pipeline's own code (evolab.training.sft.train, the GGUF
LoRA conversion, the eval stage's backend and evaluate()), varying one thing at a time:
- the template: WizardCoder's Alpaca template (which the instruct student never saw) or its chat template;
- the outputs: the seed file's hand-written one- to five-line answers or the teacher's answers;
- the learning rate: the recipe's 2e-4 or 2e-5;
and the untuned student asked both ways (the template switch without any training). Every variant is
scored on the 24 dev problems and paired against the untuned student under its chat template. The
adapter's path to llama.cpp is checked too: one adapter through transformers + peft and through
llama.cpp + the GGUF LoRA on the same problems.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from evolab.backends import Sampling, make_backend
from evolab.core.cache import response_cache
from evolab.core.config import compose, resolve
from evolab.core.models import resolve_gguf
from evolab.core.records import MethodRecord, merge_records, read_jsonl
from evolab.core.schema import EvalSettings, Experiment, TrainSettings
from evolab.evaluation.diff import mcnemar_p
from evolab.evaluation.harness import evaluate
from evolab.evaluation.sandbox import resolve_sandbox
from evolab.evaluation.student import student_backend
from evolab.evaluation.suites import load_benchmark, select
from evolab.methods.code_evol import answer_seeds
from evolab.training.gguf_lora import peft_to_gguf
from evolab.training.sft import train

REPORT = Path("reports/finetune_diagnosis")
VARIANTS = {  # name -> (template, outputs, learning rate)
    "alpaca + hand-written (the old default)": ("wizardcoder", "reference", 2e-4),
    "chat + hand-written": ("chat", "reference", 2e-4),
    "chat + teacher (the new default)": ("chat", "teacher", 2e-4),
    "chat + teacher, lr 2e-5": ("chat", "teacher", 2e-5),
}


def body_missing(sample: dict[str, Any]) -> bool:
    """The old default's failure: the signature and docstring copied, no statement after them."""
    import ast

    try:
        tree = ast.parse(sample["solution"])
    except SyntaxError:
        return False
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return bool(funcs) and all(len(f.body) == 1 and isinstance(f.body[0], ast.Expr) for f in funcs)


def score_run(work: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    samples = read_jsonl(work / "samples.jsonl")
    return {"pass1": metrics["evolab_dev"]["pass@1"], "passed": [s["passed"] for s in samples],
            "kinds": dict(Counter(s["kind"] for s in samples)), "no_body": sum(map(body_missing, samples)),
            "mean_tokens": round(sum(s["completion_tokens"] for s in samples) / len(samples), 1),
            "examples": {s["task_id"]: s["response"][:400] for s in samples[:3]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=16, help="seed instructions to train on")
    parser.add_argument("--problems", type=int, help="the first N dev problems only (default: all 24)")
    parser.add_argument("--path-problems", type=int, default=8, help="dev problems for the adapter path check")
    parser.add_argument("--out", type=Path, default=REPORT, help="report path without suffix")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="evolab-diagnosis-"))
    params = resolve(compose([], output=work / "params.yaml"))
    model, eval_cfg, teacher = params.model, params.eval, params.teacher
    eval_cfg = replace(eval_cfg, sandbox=resolve_sandbox(eval_cfg.sandbox))
    dev = load_benchmark("evolab-dev")
    dev.problems = select(dev.problems, args.problems)
    seeds = [MethodRecord.of({**r, "round": 0, "kept": True, "reason": "seed"})
             for r in read_jsonl("evolab/data/seeds.jsonl")[:args.items]]
    cache = response_cache()
    sampling = Sampling.of(params.method.sampling, params.profile.answer_max_tokens)
    answered = answer_seeds(seeds, make_backend(teacher, cache), teacher.system_prompt, sampling, params.seed,
                            params.answer_rules)
    data = {"reference": merge_records(seeds)[0], "teacher": merge_records(answered)[0]}
    results: dict[str, Any] = {}
    start = time.perf_counter()

    def run(name: str, train_cfg: TrainSettings, tuned: Path | None) -> None:
        backend = student_backend(eval_cfg, model, "lora" if tuned else None, tuned or Path("models/tuned"))
        style = "tuned" if tuned or train_cfg.template == "wizardcoder" else "instruct"
        metrics = evaluate(dev, dev.problems, backend, style, eval_cfg, train_cfg, work / name,
                           log=lambda line: None)
        results[name] = score_run(work / name, metrics)
        print(f"{name}: dev pass@1 {results[name]['pass1']:.3f} {results[name]['kinds']}", flush=True)

    run("untuned, chat template (evalplus's request)", params.train, None)
    run("untuned, alpaca template", replace(params.train, template="wizardcoder"), None)
    for name, (template, outputs, lr) in VARIANTS.items():
        train_cfg = replace(params.train, template=template, learning_rate=lr)
        out = work / "models" / name.split(" (")[0].replace(" ", "_").replace("+", "").replace(",", "")
        metrics = train([data[outputs]], model, train_cfg, out, work / "ckpt" / out.name, params.seed).metrics
        peft_to_gguf(out / "adapter", resolve_gguf(model.gguf), out / "adapter.gguf")
        run(name, train_cfg, out)
        results[name]["train"] = {k: metrics[k] for k in ("steps", "first_loss", "last_loss", "tokens")}
        results[name]["model_dir"] = str(out)
    baseline = results["untuned, chat template (evalplus's request)"]["passed"]
    for row in results.values():
        won = sum(b and not a for a, b in zip(baseline, row["passed"]))
        lost = sum(a and not b for a, b in zip(baseline, row["passed"]))
        row.update(won=won, lost=lost, mcnemar_p=mcnemar_p(won, lost))
    path = adapter_path_check(results["chat + teacher (the new default)"]["model_dir"], params, eval_cfg, dev,
                              args.path_problems, work)
    report = {"items": args.items, "problems": len(dev.problems), "minutes": round((time.perf_counter() - start) / 60, 1),
              "answers": dict(Counter(r.more["answer_reason"] for r in answered)), "variants": results, "adapter_path": path}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(report))
    print(render(report))


def adapter_path_check(model_dir: str, params: Experiment, eval_cfg: EvalSettings, dev: Any, count: int,
                       work: Path) -> dict[str, Any]:
    """The same adapter through transformers + peft (fp32) and llama.cpp + GGUF LoRA (Q4 base), greedy."""
    problems = select(dev.problems, count)
    runs = {}
    for backend_name in ("llama_cpp", "transformers"):
        backend = student_backend(replace(eval_cfg, backend=backend_name), params.model, "lora", Path(model_dir))
        evaluate(dev, problems, backend, "tuned", eval_cfg, replace(params.train, template="chat"),
                 work / f"path-{backend_name}", log=lambda line: None)
        runs[backend_name] = read_jsonl(work / f"path-{backend_name}" / "samples.jsonl")
    pairs = list(zip(runs["llama_cpp"], runs["transformers"]))
    return {"problems": count, "same_verdict": sum(a["passed"] == b["passed"] for a, b in pairs),
            "same_text": sum(a["response"] == b["response"] for a, b in pairs),
            "same_code": sum(a["solution"] == b["solution"] for a, b in pairs),
            "llama_cpp_passed": sum(a["passed"] for a, _ in pairs), "transformers_passed": sum(b["passed"] for _, b in pairs),
            "first_difference": next(({"task_id": a["task_id"], "llama_cpp": a["response"][:300],
                                       "transformers": b["response"][:300]} for a, b in pairs if a["response"] != b["response"]), None)}


def render(r: dict[str, Any]) -> str:
    lines = ["# Why fine-tuning hurt the student: each cause alone, on the dev set", "",
             f"`python scripts/finetune_diagnosis.py` ({r['minutes']} min): the first {r['items']} seed instructions, "
             "the default LoRA recipe (r 16, 1 epoch, global batch 4, cosine), the embedded Qwen2.5-Coder-0.5B-Instruct "
             f"as student and teacher; scored greedily on the {r['problems']} dev problems (evolab-dev), 768 new tokens; "
             f"paired against the untuned student asked as evalplus asks. Teacher answers: {r['answers']}.", "",
             "| variant | dev pass@1 | won / lost vs untuned | McNemar p | answers with no body | mean tokens | steps | loss first → last |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        t = v.get("train")
        steps, loss = (t["steps"], f"{t['first_loss']:.2f} → {t['last_loss']:.2f}") if t else ("-", "-")
        lines.append(f"| {name} | {v['pass1']:.3f} | {v['won']} / {v['lost']} | {v['mcnemar_p']:.3g} | {v['no_body']} | "
                     f"{v['mean_tokens']} | {steps} | {loss} |")
    p = r["adapter_path"]
    lines += ["", "## The adapter's path to llama.cpp", "",
              f"The chat + teacher adapter on the first {p['problems']} dev problems: transformers + peft (fp32 weights) "
              f"passes {p['transformers_passed']}, llama.cpp + GGUF LoRA (Q4_K_M base) passes {p['llama_cpp_passed']}; "
              f"same verdict on {p['same_verdict']}, same extracted code on {p['same_code']}, same text on {p['same_text']}.",
              "", "## What the answers look like (first three dev problems, first 400 characters)", ""]
    for name, v in r["variants"].items():
        lines += [f"### {name}", ""]
        for task, text in v["examples"].items():
            lines += [f"{task}:", "", "```", text.replace("```", "'''"), "```", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
