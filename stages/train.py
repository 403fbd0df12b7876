"""train: fine-tune the student on the merged data (train.method: lora or full).

With launcher.name other than `none`, this same command relaunches itself under `accelerate launch`
with the launcher's accelerate config (DDP, FSDP, DeepSpeed). Checkpoints live outside the stage's
outputs, keyed by everything that shapes the run, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from evolab import params as P
from evolab.cache import cache_key
from evolab.gguf_lora import peft_to_gguf
from evolab.models import cache_dir, resolve_gguf, sha256_of

OUT = Path("models/tuned")
DATA = Path("data/merged.jsonl")
WORKER_FLAG = "--worker"


def checkpoint_dir(params: dict[str, Any]) -> Path:
    key = cache_key(data=sha256_of(DATA), model=params["model"], train=params["train"],
                    launcher=params["launcher"], seed=params["seed"])
    return cache_dir() / "checkpoints" / key


def launch_command(launcher: dict[str, Any], config_file: Path) -> list[str]:
    """`accelerate launch` of this stage's worker with the launcher's accelerate config file."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "-m", "stages.train", WORKER_FLAG]


def write_accelerate_config(launcher: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(launcher["accelerate"], sort_keys=False))
    return path


def finish(params: dict[str, Any], result: dict[str, Any], checkpoints: Path) -> None:
    """Main process: the llama.cpp form of the adapter, the merged model if asked, metrics, loss curve."""
    model, train = params["model"], params["train"]
    if train["method"] == "lora" and model.get("gguf") and not model.get("hf"):
        peft_to_gguf(OUT / "adapter", resolve_gguf(model["gguf"]), OUT / "adapter.gguf")
    if train["method"] == "lora" and train["merge"]:
        from evolab.training import merge_adapter

        merge_adapter(model, train, OUT / "adapter", OUT / "merged")
    P.dump_json(result["metrics"], "metrics/train.json")
    with open("metrics/train_loss.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss"])
        writer.writeheader()
        writer.writerows(result["losses"])
    if not train["keep_checkpoints"]:
        shutil.rmtree(checkpoints, ignore_errors=True)
    print(f"train: {result['metrics']}")


def main() -> None:
    params = P.load()
    launcher = params["launcher"]
    if launcher["name"] != "none" and WORKER_FLAG not in sys.argv:
        command = launch_command(launcher, write_accelerate_config(launcher, OUT / "accelerate.yaml"))
        print("train: " + " ".join(command), flush=True)
        sys.exit(subprocess.call(command))

    from evolab.datasets import read_jsonl
    from evolab.training import train

    checkpoints = checkpoint_dir(params)
    result = train(read_jsonl(DATA), params["model"], params["train"], OUT, checkpoints, params["seed"])
    if result["main_process"]:
        finish(params, result, checkpoints)


if __name__ == "__main__":
    P.run(main)
