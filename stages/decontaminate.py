"""decontaminate: the verified data (the merged items verification kept) less what leaks the benchmarks and less its duplicates, for every
method, before training. What was removed, by which check and against which problem, is written to
results/decontamination.jsonl; the counts to metrics/decontamination.json."""
from __future__ import annotations

from collections import Counter
from typing import Any

from evolab.core import paths
from evolab.core.config import load
from evolab.core.records import Item, Record, read_items, write_jsonl, write_rows
from evolab.core.schema import Decontamination
from evolab.core.stage import dump_json, run_stage
from evolab.curation.decontamination import decontaminate
from evolab.evaluation.suites import load_benchmark


def clean_data(items: list[Item], cfg: Decontamination) -> tuple[list[Item], list[Record], dict[str, Any]]:
    """(kept items, removals with the removed item's instruction, statistics)."""
    problems = [p for name in cfg.benchmarks for p in load_benchmark(name).problems]
    embed = None
    if cfg.embedding.threshold is not None:
        from evolab.curation.embeddings import embed as embed_with

        embed = lambda texts: embed_with(texts, cfg.embedding.model)  # noqa: E731
    kept, removed = decontaminate(items, problems, cfg, embed)
    by_id = {item.id: item for item in items}
    rows = [{**removal.as_record(), "part": by_id[removal.id].part, "instruction": by_id[removal.id].instruction[:500]}
            for removal in removed]
    stats = {"items": len(items), "kept": len(kept), "removed": len(removed),
             "removed_by_check": dict(Counter(r.check for r in removed)),
             "benchmarks": list(cfg.benchmarks), "problems": len(problems)}
    return kept, rows, stats


def main() -> None:
    params = load()
    kept, rows, stats = clean_data(read_items(paths.VERIFIED), params.decontamination)
    write_rows(kept, paths.TRAIN)
    write_jsonl(rows, paths.DECONTAMINATION)
    dump_json(stats, paths.DECONTAMINATION_METRICS)
    print(f"decontaminate: {stats}")
    for row in rows:
        print(f"decontaminate: removed {row['id']} ({row['check']} {row['match']} {row['score']:.2f})")


if __name__ == "__main__":
    run_stage(main)
