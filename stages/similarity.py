"""similarity: per round, how close the training items come to the benchmark (evolab/curation/similarity.py)."""
from __future__ import annotations

from evolab.core import paths
from evolab.core.config import load
from evolab.core.records import read_items, write_rows
from evolab.core.stage import dump_json, run_stage
from evolab.curation.similarity import similarity_by_round, tfidf_to_test
from evolab.evaluation.suites import load_benchmark


def main() -> None:
    params = load()
    cfg = params.similarity
    benchmark = load_benchmark(cfg.benchmark)
    prompts = {p.task_id: p.prompt for p in benchmark.problems}
    items = read_items(paths.MERGED)
    tfidf = tfidf_to_test([f"{item.instruction}\n{item.output}" for item in items],
                          [f"{p.prompt}{p.canonical_solution}" for p in benchmark.problems])
    stats, rows = similarity_by_round(items, prompts, cfg.model, tfidf)
    write_rows(rows, paths.SIMILARITY)
    dump_json({"model": cfg.model, "benchmark": benchmark.name, **stats}, paths.SIMILARITY_METRICS)
    print(f"similarity: {stats}")


if __name__ == "__main__":
    run_stage(main)
