"""eval / baseline: greedy HumanEval pass@1 of the tuned model (its training template, LoRA applied
by llama.cpp) or of the untuned student (its chat template)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from evolab import params as P
from evolab.backends import LlamaCppBackend, Sampling
from evolab.evaluation import evaluate_model, humaneval_problems, prompt_for, select


def main() -> None:
    mode = sys.argv[1]  # "tuned" or "baseline"
    params = P.load()
    eval_cfg, model = params["eval"], params["model"]
    out = Path("results") / mode
    shutil.rmtree(out, ignore_errors=True)
    benchmark = humaneval_problems()
    problems = select(benchmark, eval_cfg["limit"])
    lora = "models/tuned/adapter.gguf" if mode == "tuned" else None
    backend = LlamaCppBackend({"backend": "llama_cpp", "model": model["gguf"], "lora_path": lora, "n_ctx": 4096})
    greedy = Sampling(max_tokens=eval_cfg["max_tokens"], temperature=0.0)
    template = params["train"]["template"]

    def generate(problem: dict) -> str:
        prompt = prompt_for(problem, mode, eval_cfg, template)
        if mode == "tuned" or model["kind"] == "base":
            return backend.complete(prompt, greedy).text
        return backend.chat_stream([{"role": "user", "content": prompt}], greedy).text

    metrics = evaluate_model(problems, generate, out)
    metrics.update({"benchmark": eval_cfg["benchmark"], "partial": len(problems) < len(benchmark)})
    P.dump_json(metrics, f"metrics/{'eval' if mode == 'tuned' else 'baseline'}.json")
    print(f"{mode}: {metrics}")


if __name__ == "__main__":
    P.run(main)
