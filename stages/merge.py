"""merge: the kept items of the method's data (evolab/core/records.py, merge_records): for Code Evol-Instruct the
seed data plus rounds 1..N, as the paper trains on; each item says which part (method) made it."""
from __future__ import annotations

from evolab.core import paths
from evolab.core.config import load
from evolab.core.errors import StageError
from evolab.core.records import merge_records, read_records, write_rows
from evolab.core.stage import dump_json, run_stage


def main() -> None:
    params = load()
    merged, stats = merge_records(read_records(params.merge_input))
    if not merged:
        raise StageError(
            f"no item of {params.merge_input} was kept: nothing to train on (each record's `reason` says why; "
            "counts in metrics/). Generate more (-S profile.seeds=...), use a stronger teacher (-S teacher=embedded-1.5b, "
            "or an OpenAI-compatible endpoint: -S teacher=openai), or for WaveCoder -S method.discriminate=false.")
    write_rows(merged, paths.MERGED)
    dump_json(stats, paths.DATA_METRICS)
    print(f"merge: {stats}")


if __name__ == "__main__":
    run_stage(main)
