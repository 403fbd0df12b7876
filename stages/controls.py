"""controls: the training set of each configured control (evolab/curation/controls.py), counted in samples and
in the student's tokens; control_train@NAME and control_eval@NAME train and evaluate each exactly as
train and eval do the merged set."""
from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

from evolab.core import paths
from evolab.core.config import load
from evolab.core.models import student_ref
from evolab.core.prompts import sft_example
from evolab.core.records import Item, read_items, write_rows
from evolab.core.stage import dump_json, run_stage
from evolab.curation.controls import build_controls

OUT = Path("data/controls")


def main() -> None:
    params = load()
    from evolab.training.sft import example_text, load_tokenizer

    tokenizer = load_tokenizer(student_ref(params.model))
    kind = params.train.template

    @lru_cache(maxsize=None)
    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    def tokens(item: Item) -> int:
        return count(example_text(tokenizer, sft_example(kind, params.train, item)))

    sets = build_controls(read_items(paths.TRAIN), params.rounds, params.controls.families, tokens,
                          params.seed)
    shutil.rmtree(OUT, ignore_errors=True)
    stats = {}
    for name, items in sets.items():
        write_rows(items, OUT / f"{name}.jsonl")
        stats[name] = {"samples": len(items), "tokens": sum(tokens(item) for item in items)}
    dump_json(stats, paths.CONTROLS_METRICS)
    print(f"controls: {stats}")


if __name__ == "__main__":
    run_stage(main)
