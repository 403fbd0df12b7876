"""eval / baseline: pass@k of the tuned model (its training template, its adapter applied) or of
the untuned student (its chat template, or plain completion for a base model) on eval.benchmark."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from evolab import params as P
from evolab.backends import Backend, make_backend
from evolab.cache import ResponseCache, cache_key
from evolab.benchmarks import load_benchmark, select
from evolab.evaluation import evaluate
from evolab.execution import resolve_sandbox
from evolab.models import cache_dir, sha256_of

ADAPTER = Path("models/tuned")


def student_backend(eval_cfg: dict[str, Any], model: dict[str, Any], tuned: bool) -> Backend:
    """The student behind eval.backend; for the tuned model with the adapter in the form that backend
    loads. Generations are cached (keyed by the adapter's digest too): an interrupted evaluation
    resumes without generating again."""
    name = eval_cfg["backend"]
    if name == "llama_cpp":
        config = {"model": model["gguf"], "lora_path": str(ADAPTER / "adapter.gguf") if tuned else None, "n_ctx": 4096}
    elif name in ("transformers", "vllm"):
        config = {"model": model.get("hf") or model["gguf"], "adapter": str(ADAPTER / "adapter") if tuned else None,
                  "dtype": eval_cfg.get("dtype")}
    else:  # an endpoint serving the student (for the tuned model: serving the adapter, e.g. vLLM --lora-modules)
        config = dict(eval_cfg["endpoint"])
    fingerprint = cache_key(files=[sha256_of(f) for f in sorted(ADAPTER.rglob("*")) if f.is_file()]) if tuned else None
    return make_backend({**config, "backend": name, "fingerprint": fingerprint}, ResponseCache(cache_dir() / "responses.sqlite"))


def main() -> None:
    mode = sys.argv[1]  # "tuned" or "baseline"
    params = P.load()
    eval_cfg, model = params["eval"], params["model"]
    out = Path("results") / mode
    shutil.rmtree(out, ignore_errors=True)
    benchmark = load_benchmark(eval_cfg["benchmark"])
    problems = select(benchmark.problems, eval_cfg["limit"], eval_cfg["tasks"])
    style = "tuned" if mode == "tuned" else model["kind"]
    sandbox = resolve_sandbox(eval_cfg["sandbox"])
    backend = student_backend(eval_cfg, model, tuned=mode == "tuned")
    metrics = evaluate(benchmark, problems, backend, style, {**eval_cfg, "sandbox": sandbox},
                       params["train"]["template"], out)
    metrics = {"benchmark": benchmark.name, "backend": eval_cfg["backend"], "prompt_style": style,
               "problems": len(problems), "partial": len(problems) < len(benchmark.problems),
               "samples_per_problem": eval_cfg["sampling"]["n"], "temperature": eval_cfg["sampling"]["temperature"],
               "sandbox": sandbox, "live_generations": backend.live_calls, "cached_generations": backend.cached_calls,
               **metrics}
    P.dump_json(metrics, f"metrics/{'eval' if mode == 'tuned' else 'baseline'}.json")
    print(f"{mode}: {metrics}")


if __name__ == "__main__":
    P.run(main)
