"""controls: the training set of each configured control (evolab/controls.py), counted in samples and
in the student's tokens; control_train@NAME and control_eval@NAME train and evaluate each exactly as
train and eval do the merged set."""
from __future__ import annotations

import shutil
from pathlib import Path

from evolab import params as P
from evolab.controls import build_controls
from evolab.datasets import read_jsonl, write_jsonl

OUT = Path("data/controls")


def main() -> None:
    params = P.load()
    from evolab.training import load_tokenizer, sft_example

    tokenizer = load_tokenizer(params["model"])
    template = params["train"]["template"]

    def tokens(record: dict) -> int:
        example = sft_example(template, record)
        return len(tokenizer(example["prompt"] + example["completion"])["input_ids"])

    sets = build_controls(read_jsonl("data/merged.jsonl"), params["rounds"], params["controls"]["families"], tokens,
                          params["seed"])
    shutil.rmtree(OUT, ignore_errors=True)
    stats = {}
    for name, records in sets.items():
        write_jsonl(records, OUT / f"{name}.jsonl")
        stats[name] = {"samples": len(records), "tokens": sum(tokens(r) for r in records)}
    P.dump_json(stats, "metrics/controls_data.json")
    print(f"controls: {stats}")


if __name__ == "__main__":
    P.run(main)
