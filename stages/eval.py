"""eval / baseline: pass@k of the tuned model (its adapter applied) or of
the untuned student (evalplus's chat request, or its plain completion for a base model) on eval.benchmark.
The tuned model is asked in the format it was trained in (evolab/core/prompts.py)."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from evolab.backends import Backend, make_backend
from evolab.core import config as P
from evolab.core import paths
from evolab.core.cache import cache_key, response_cache
from evolab.core.errors import StageError
from evolab.core.models import sha256_of, student_ref
from evolab.core.prompts import template_kind
from evolab.evaluation.harness import evaluate
from evolab.evaluation.sandbox import resolve_sandbox
from evolab.evaluation.suites import load_benchmark, select

TUNED = Path(paths.TUNED)


def tuned_checkpoint(model: dict[str, Any], method: str, tuned: Path) -> tuple[str, str | None]:
    """(model, adapter) for the transformers and vLLM backends: the fully fine-tuned model, the merged
    model when train.merge wrote one, or the base with the adapter."""
    if method == "full":
        return str(tuned / "model"), None
    if (tuned / "merged").is_dir():
        return str(tuned / "merged"), None
    return student_ref(model), str(tuned / "adapter")


def student_backend(eval_cfg: dict[str, Any], model: dict[str, Any], train_method: str | None,
                    tuned: Path = TUNED) -> Backend:
    """The student behind eval.backend: untuned (train_method None) or tuned, with the result of train
    in the form that backend loads. Generations are cached (keyed by the tuned files' digest too): an
    interrupted evaluation resumes without generating again."""
    name = eval_cfg["backend"]
    if name == "llama_cpp":
        if not model.get("gguf") or train_method == "full":
            raise StageError("eval.backend=llama_cpp runs a GGUF model with a LoRA adapter; for a hub model or a "
                             "fully fine-tuned one use -S eval.backend=transformers (CPU) or vllm (GPU).")
        adapter = str(tuned / "adapter.gguf") if train_method else None
        config = {"model": model["gguf"], "lora_path": adapter, "n_ctx": 4096, "parallel": eval_cfg.get("parallel")}
    elif name in ("transformers", "vllm"):
        path, adapter = tuned_checkpoint(model, train_method, tuned) if train_method else (student_ref(model), None)
        config = {"model": path, "adapter": adapter, "dtype": eval_cfg.get("dtype"),
                  **((eval_cfg.get("vllm") or {}) if name == "vllm" else {})}
    else:  # an endpoint serving the student (for the tuned model: serving the adapter, e.g. vLLM --lora-modules)
        config = dict(eval_cfg["endpoint"])
    fingerprint = cache_key(files=[sha256_of(f) for f in sorted(tuned.rglob("*")) if f.is_file()]) if train_method else None
    return make_backend({**config, "backend": name, "fingerprint": fingerprint}, response_cache())


# mode -> (model evaluated, where its results go, its metrics file)
MODES = paths.EVAL_MODES


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.eval")
    parser.add_argument("mode", choices=MODES, help="dev: the tuned model on the evol-stop development set")
    parser.add_argument("--model", type=Path, default=TUNED, help="the train stage's output folder")
    parser.add_argument("--out", type=Path, help="results folder (default: by mode)")
    parser.add_argument("--metrics", type=Path, help="metrics file (default: by mode)")
    args = parser.parse_args(argv)
    student, out, metrics = MODES[args.mode]
    args.student, args.out, args.metrics = student, args.out or Path(out), args.metrics or Path(metrics)
    return args


def main() -> None:
    args = parse_args(sys.argv[1:])
    params = P.load()
    eval_cfg, model = params["eval"], params["model"]
    shutil.rmtree(args.out, ignore_errors=True)
    if args.mode == "dev":
        eval_cfg = {**eval_cfg, "benchmark": params["evol_stop"]["benchmark"], "limit": None, "tasks": None}
    benchmark = load_benchmark(eval_cfg["benchmark"])
    problems = select(benchmark.problems, eval_cfg["limit"], eval_cfg["tasks"])
    tuned = args.student == "tuned"
    style = "tuned" if tuned else model["kind"]
    sandbox = resolve_sandbox(eval_cfg["sandbox"])
    backend = student_backend(eval_cfg, model, params["train"]["method"] if tuned else None, args.model)
    metrics = evaluate(benchmark, problems, backend, style, {**eval_cfg, "sandbox": sandbox},
                       params["train"], model["kind"], args.out, log=lambda line: print(line, flush=True))
    template = template_kind(params["train"], model["kind"]) if tuned else None
    metrics = {"benchmark": benchmark.name, "backend": eval_cfg["backend"], "prompt_style": style, "template": template,
               "max_tokens": eval_cfg["max_tokens"],
               "problems": len(problems), "partial": len(problems) < len(benchmark.problems),
               "samples_per_problem": eval_cfg["sampling"]["n"], "temperature": eval_cfg["sampling"]["temperature"],
               "sandbox": sandbox, "live_generations": backend.live_calls, "cached_generations": backend.cached_calls,
               **metrics}
    P.dump_json(metrics, args.metrics)
    print(f"{args.mode}: {metrics}")


if __name__ == "__main__":
    P.run(main)
