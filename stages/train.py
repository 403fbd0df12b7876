"""train: fine-tune the student on the decontaminated data (train.method: lora or full), in one phase or,
for MagicoderS, one phase per part (method.train_phases).

With launcher.name other than `none`, this same command relaunches itself under `accelerate launch`
with the launcher's accelerate config (DDP, FSDP, DeepSpeed), once per phase. Checkpoints live outside the stage's
outputs, keyed by everything that shapes the run, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from evolab.core import config as P
from evolab.core import paths
from evolab.core.cache import cache_key
from evolab.core.models import cache_dir, resolve_gguf, sha256_of
from evolab.training.gguf_lora import peft_to_gguf

WORKER_FLAG = "--worker"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.train")
    parser.add_argument("--data", type=Path, default=Path(paths.TRAIN))
    parser.add_argument("--out", type=Path, default=Path("models/tuned"))
    parser.add_argument("--metrics", type=Path, default=Path(paths.TRAIN_METRICS))
    parser.add_argument("--curve", type=Path, default=Path(paths.TRAIN_LOSS), help="loss per step (CSV)")
    parser.add_argument(WORKER_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", type=int, default=0, help=argparse.SUPPRESS)  # the phase a worker trains
    return parser.parse_args(argv)


def checkpoint_dir(params: dict[str, Any], data: Path) -> Path:
    key = cache_key(data=sha256_of(data), model=params["model"], train=params["train"],
                    launcher=params["launcher"], seed=params["seed"], phases=params["method"]["train_phases"])
    return cache_dir() / "checkpoints" / key


def launch_command(config_file: Path, argv: list[str]) -> list[str]:
    """`accelerate launch` of this stage's worker, with the launcher's accelerate config file and this run's arguments."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "-m", "stages.train", *argv, WORKER_FLAG]


def write_accelerate_config(launcher: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(launcher["accelerate"], sort_keys=False))
    return path


def finish(params: dict[str, Any], result: dict[str, Any], args: argparse.Namespace, checkpoints: Path) -> None:
    """Main process: the llama.cpp form of the adapter, the merged model if asked, metrics, loss curve."""
    model, train, out = params["model"], params["train"], args.out
    if train["method"] == "lora" and model.get("gguf") and not model.get("hf"):
        peft_to_gguf(out / "adapter", resolve_gguf(model["gguf"]), out / "adapter.gguf")
    if train["method"] == "lora" and train["merge"]:
        from evolab.training.sft import merge_adapter

        merge_adapter(model, train, out / "adapter", out / "merged")
    P.dump_json(result["metrics"], args.metrics)
    args.curve.parent.mkdir(parents=True, exist_ok=True)
    with open(args.curve, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss"])
        writer.writeheader()
        writer.writerows(result["losses"])
    if not train["keep_checkpoints"]:
        shutil.rmtree(checkpoints, ignore_errors=True)
    print(f"train: {result['metrics']}")


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    params = P.load()
    launcher = params["launcher"]
    from evolab.core.records import read_jsonl
    from evolab.training.sft import split_phases, train, train_phase

    checkpoints = checkpoint_dir(params, args.data)
    phases = split_phases(read_jsonl(args.data), params["method"]["train_phases"])
    if args.worker:  # one phase, in each process of an `accelerate launch`
        train_phase(args.phase, phases, params["model"], params["train"], args.out, checkpoints, params["seed"])
        return
    import torch

    from evolab.training.sft import check_devices

    check_devices(params["train"], launcher, torch.cuda.device_count())
    launch = None
    if launcher["name"] != "none":
        config_file = write_accelerate_config(launcher, args.out / "accelerate.yaml")

        def launch(k: int) -> None:
            command = launch_command(config_file, [*argv, "--phase", str(k)])
            print("train: " + " ".join(command), flush=True)
            if (code := subprocess.call(command)) != 0:
                sys.exit(code)

    result = train(phases, params["model"], params["train"], args.out, checkpoints, params["seed"], launch)
    finish(params, result, args, checkpoints)


if __name__ == "__main__":
    P.run(main)
