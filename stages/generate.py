"""generate@NAME: instruction data written by the teacher from real code, for the methods that do not
(only) evolve seed instructions: OSS-Instruct (Magicoder) from random snippets, WaveCoder's
generator-discriminator from (docstring, function) pairs chosen by KCenterGreedy.

The output holds one record per teacher call, kept or not and why; merge keeps the kept ones.
An interrupted run resumes: every answer already received comes from the response cache.
"""
from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Any, Callable

from evolab import oss_instruct, wavecoder
from evolab import params as P
from evolab.backends import Backend, Sampling, make_backend
from evolab.cache import ResponseCache
from evolab.datasets import Record, write_jsonl
from evolab.errors import check_teacher
from evolab.models import cache_dir
from evolab.sources import corpus, function_pairs, snippets

Log = Callable[[str], None]


def oss_instruct_data(cfg: dict[str, Any], count: int, max_tokens: int, seed: int, backend: Backend,
                      log: Log) -> tuple[list[Record], dict[str, Any]]:
    source = cfg["source"]
    seeds = snippets(corpus(source), count, source["seed"], source["min_lines"], source["max_lines"])
    records = oss_instruct.generate(seeds, cfg, backend, cfg["system_prompt"],
                                    Sampling(max_tokens=max_tokens, **cfg["sampling"]), log)
    _, dropped = oss_instruct.clean([r for r in records if r["kept"]], cfg["clean_seed"])
    repeats = {d["id"]: d for d in dropped}
    for r in records:
        if r["id"] in repeats:  # Magicoder's cleaning: a repeated seed, problem or solution
            r["kept"], r["reason"] = False, f"repeated_{repeats[r['id']]['field']}"
    return records, {"cleaning_drops": dropped}


def wavecoder_data(cfg: dict[str, Any], count: int, max_tokens: int, seed: int, backend: Backend,
                   log: Log) -> tuple[list[Record], dict[str, Any]]:
    from evolab.coreset import k_center_greedy
    from evolab.embeddings import embed

    source, coreset = cfg["source"], cfg["coreset"]
    pairs = list(function_pairs(corpus(source), source["min_lines"], source["max_lines"]))
    # KCenterGreedy over a random pool: embedding every function of a large tree costs minutes on a CPU.
    pool = random.Random(coreset["seed"]).sample(pairs, min(coreset["pool"], len(pairs)))
    points = embed([f"{p['docstring']}\n{p['code']}" for p in pool], coreset["embedding"])
    chosen = k_center_greedy(points, min(count, len(pool)), coreset["seed"])
    raw = [{**pool[i], "id": f"wave-{n:05d}"} for n, i in enumerate(chosen)]
    log(f"{len(raw)} raw functions chosen by KCenterGreedy from {len(pool)} of {len(pairs)}")
    records, bank = wavecoder.generate(raw, cfg, backend, Sampling(max_tokens=max_tokens, **cfg["sampling"]), seed, log)
    for r, item in zip(records, raw):
        r["source"] = item["source"]
    tasks = {task: {"generated": sum(r["task"] == task for r in records),
                    "kept": sum(r["task"] == task and r["kept"] for r in records)} for task in sorted(cfg["tasks"])}
    return records, {"tasks": tasks, "raw_pairs": len(pairs), "coreset_pool": len(pool),
                     "bank_good": len(bank.good), "bank_bad": len(bank.bad)}


GENERATORS: dict[str, Callable[..., tuple[list[Record], dict[str, Any]]]] = {
    "oss_instruct": oss_instruct_data,
    "wavecoder": wavecoder_data,
}


def generate(name: str, cfg: dict[str, Any], params: dict[str, Any], backend: Backend) -> tuple[list[Record], dict[str, Any]]:
    if name not in GENERATORS:
        raise P.ConfigError(f"unknown generator '{name}' (method.generator): choose one of {sorted(GENERATORS)}.")
    profile = params["profile"]
    records, extra = GENERATORS[name](cfg, profile["seeds"], profile["generate_max_tokens"], params["seed"], backend,
                                      lambda line: print(f"generate@{name}: {line}", flush=True))
    check_teacher(records, f"generate@{name}", params["teacher"])
    for r in records:
        r["part"] = name
    stats = {"items": len(records), "kept": sum(r["kept"] for r in records),
             "reasons": dict(Counter(r["reason"] for r in records)),
             "failed_calls": [r["id"] for r in records if r["errors"]], **extra}
    return records, stats


def main() -> None:
    name = sys.argv[1]
    params = P.load()
    spec = params["generate_stages"][name]
    cfg = params["method"] if spec["config"] == "method" else params["method"][name]
    backend = make_backend(params["teacher"], ResponseCache(cache_dir() / "responses.sqlite"))
    records, stats = generate(name, cfg, params, backend)
    write_jsonl(records, spec["output"])
    P.dump_json({**stats, "live_calls": backend.live_calls, "cached_calls": backend.cached_calls}, spec["stats"])
    print(f"generate@{name}: kept {stats['kept']} of {stats['items']} {stats['reasons']}")


if __name__ == "__main__":
    P.run(main)
