"""train: LoRA fine-tune of the student on the merged data; the adapter also as a GGUF LoRA."""
from __future__ import annotations

import csv
from pathlib import Path

from evolab import params as P
from evolab.datasets import read_jsonl
from evolab.gguf_lora import peft_to_gguf
from evolab.models import resolve_gguf
from evolab.training import train_lora

OUT = Path("models/tuned")


def main() -> None:
    params = P.load()
    gguf_path = resolve_gguf(params["model"]["gguf"])
    result = train_lora(read_jsonl("data/merged.jsonl"), gguf_path, params["model"], params["train"], OUT, params["seed"])
    peft_to_gguf(OUT / "adapter", gguf_path, OUT / "adapter.gguf")
    P.dump_json(result["metrics"], "metrics/train.json")
    with open("metrics/train_loss.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss"])
        writer.writeheader()
        writer.writerows(result["losses"])
    print(f"train: {result['metrics']}")


if __name__ == "__main__":
    P.run(main)
