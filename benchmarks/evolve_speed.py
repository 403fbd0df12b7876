"""Evolution benchmark: our teacher backends against raw llama.cpp on the same prompts, the local
OpenAI-compatible server at 1, 2, 4 and 8 concurrent requests, and whole evolved items per minute.

    python benchmarks/evolve_speed.py        # writes reports/evolve_benchmark.{md,json}
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from evolab.backends import Sampling, make_backend
from evolab.core.config import load
from evolab.core.models import resolve_gguf
from evolab.core.records import MethodRecord, read_jsonl
from evolab.core.schema import CodeEvol
from evolab.methods.code_evol import evolve_items, pool_for_next_round
from evolab.testing.serve import llama_server

MODEL = "qwen2.5-coder-0.5b-instruct"
REPORT = Path("reports/evolve_benchmark")
ITEMS = 8
MAX_TOKENS = 128


def evolve_prompts(method: CodeEvol) -> list[list[dict[str, str]]]:
    seeds = read_jsonl("evolab/data/seeds.jsonl")[:ITEMS]
    names = sorted(method.heuristics)
    return [[{"role": "user", "content": method.template.format(method=method.heuristics[names[i % len(names)]],
                                                                   question=s["instruction"])}] for i, s in enumerate(seeds)]


def timed(fn: Any) -> tuple[int, float]:
    start = time.perf_counter()
    tokens = fn()
    return tokens, time.perf_counter() - start


def raw_llama(prompts: list, sampling: Sampling) -> tuple[int, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(resolve_gguf(MODEL)), n_ctx=4096, n_threads=os.cpu_count(), seed=0, verbose=False)
    llm.create_chat_completion(messages=prompts[0], max_tokens=4)
    return timed(lambda: sum(llm.create_chat_completion(messages=p, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                                        top_p=sampling.top_p, seed=sampling.seed + i)["usage"]["completion_tokens"]
                             for i, p in enumerate(prompts)))


def ours(config: dict[str, Any], prompts: list, sampling: Sampling) -> tuple[int, float]:
    backend = make_backend(config)
    backend.generate(prompts[0], Sampling(max_tokens=4))
    requests = [(p, sampling.with_seed(sampling.seed + i)) for i, p in enumerate(prompts)]
    return timed(lambda: sum(c.completion_tokens for c in backend.generate_all(requests)))


def row(tokens: int, seconds: float) -> dict[str, Any]:
    return {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_second": round(tokens / seconds, 2),
            "requests_per_minute": round(ITEMS * 60 / seconds, 2)}


def main() -> None:
    params = load()
    method = params.method
    prompts = evolve_prompts(method)
    sampling = Sampling.of(method.sampling, MAX_TOKENS)
    results: dict[str, Any] = {"raw llama.cpp (Llama.create_chat_completion)": row(*raw_llama(prompts, sampling))}
    results["evolab llama_cpp backend"] = row(*ours({"backend": "llama_cpp", "model": MODEL}, prompts, sampling))
    with llama_server(MODEL) as url:
        for n in (1, 2, 4, 8):
            results[f"evolab openai backend -> llama-cpp-python server, concurrency {n}"] = row(*ours(
                {"backend": "openai", "base_url": url, "model": "embedded", "concurrency": n,
                 "extra_body": {"repeat_penalty": 1.0}}, prompts, sampling))
    teacher = make_backend({"backend": "llama_cpp", "model": MODEL})
    profile = params.profile
    seeds = [MethodRecord.of({**s, "round": 0, "kept": True, "reason": "seed"}) for s in read_jsonl("evolab/data/seeds.jsonl")[:ITEMS]]
    pool = pool_for_next_round(seeds, "parent")
    start = time.perf_counter()
    evolutions = evolve_items(pool, 1, method, teacher, params.teacher.system_prompt,
                              Sampling.of(method.sampling, profile.evolve_max_tokens),
                              Sampling.of(method.sampling, profile.answer_max_tokens), seed=7)
    minutes = (time.perf_counter() - start) / 60
    items = {"items": len(evolutions), "kept": sum(e.reason is None for e in evolutions), "minutes": round(minutes, 2),
             "items_per_minute": round(len(evolutions) / minutes, 2)}
    raw = results["raw llama.cpp (Llama.create_chat_completion)"]["tokens_per_second"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    REPORT.with_suffix(".json").write_text(json.dumps({"machine": machine, "generation": results, "evolution": items}, indent=2) + "\n")
    lines = ["# Evolution benchmark", "", f"Machine: {machine}. Written by `python benchmarks/evolve_speed.py` on "
             f"{time.strftime('%Y-%m-%d')}: {ITEMS} Code Evol-Instruct prompts (the seeds, heuristics in turn), "
             f"{MAX_TOKENS} new tokens at most, T={sampling.temperature}, embedded Qwen2.5-Coder-0.5B Q4_K_M.", "",
             "| path | tokens | seconds | tokens/s | ratio to raw llama.cpp | requests/min |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['tokens']} | {r['seconds']} | {r['tokens_per_second']} | "
                     f"{r['tokens_per_second'] / raw:.2f} | {r['requests_per_minute']} |")
    lines += ["", "Every path sampled the same tokens (sampling is seeded per request). llama-cpp-python's server "
              "runs one request at a time: concurrent requests queue and defeat its prompt-prefix reuse, so "
              "concurrency pays only against a batching server (vLLM).", "",
              f"Whole items (evolve, judge, answer; profile `{profile.name}` token limits), embedded teacher: "
              f"{items['items']} items in {items['minutes']} min = **{items['items_per_minute']} items/min** "
              f"({items['kept']} kept).", ""]
    REPORT.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))



if __name__ == "__main__":
    main()
