"""One training run as the train stage runs it: in this process, or, with launcher.name other than `none`, the stage's
own command relaunched under `accelerate launch` with the launcher's accelerate config (DDP, FSDP, DeepSpeed), once
per phase; then the llama.cpp form of the adapter, the merged model if asked, the metrics, the loss curve, and the
checkpoints' removal. Checkpoints live outside the stage's outputs, keyed by everything that shapes the run, so an
interrupted run resumes where it stopped."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from evolab.core.cache import cache_key
from evolab.core.models import cache_dir, resolve_gguf, sha256_of
from evolab.core.records import read_items
from evolab.core.schema import Experiment, Launcher
from evolab.core.stage import dump_json
from evolab.training.gguf_lora import peft_to_gguf
from evolab.training.sft import TrainResult, check_devices, merge_adapter, split_phases, train, train_phase

WORKER_FLAG, PHASE_FLAG = "--worker", "--phase"  # a relaunched process trains one phase


def checkpoint_dir(params: Experiment, data: Path) -> Path:
    key = cache_key(data=sha256_of(data), model=asdict(params.model), train=asdict(params.train),
                    launcher=asdict(params.launcher), seed=params.seed, phases=params.method.train_phases)
    return cache_dir() / "checkpoints" / key


def launch_command(config_file: Path, command: list[str], phase: int) -> list[str]:
    """`accelerate launch` of `command` (the stage's `-m MODULE ARGS`) as the worker of one phase."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file), *command,
            PHASE_FLAG, str(phase), WORKER_FLAG]


def write_accelerate_config(launcher: Launcher, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(launcher.accelerate, sort_keys=False))
    return path


def finish(params: Experiment, result: TrainResult, out: Path, metrics: Path, curve: Path, checkpoints: Path) -> None:
    """Main process: the llama.cpp form of the adapter, the merged model if asked, metrics, loss curve."""
    model, train_cfg = params.model, params.train
    if train_cfg.method == "lora" and model.gguf and not model.hf:
        peft_to_gguf(out / "adapter", resolve_gguf(model.gguf), out / "adapter.gguf")
    if train_cfg.method == "lora" and train_cfg.merge:
        merge_adapter(model, train_cfg, out / "adapter", out / "merged")
    dump_json(result.metrics, metrics)
    curve.parent.mkdir(parents=True, exist_ok=True)
    with open(curve, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss"])
        writer.writerows(result.losses)
    if not train_cfg.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    print(f"train: {result.metrics}")


def run(params: Experiment, data: Path, out: Path, metrics: Path, curve: Path, command: list[str],
        worker_phase: int | None = None) -> None:
    """Train the student on `data` into `out`. `command` is the stage's own (`-m MODULE ARGS`), relaunched per phase
    under a launcher; `worker_phase` is the phase this process trains when it is such a relaunch."""
    launcher, seed = params.launcher, params.seed
    checkpoints = checkpoint_dir(params, data)
    phases = split_phases(read_items(data), params.method.train_phases)
    if worker_phase is not None:  # one phase, in each process of an `accelerate launch`
        train_phase(worker_phase, phases, params.model, params.train, out, checkpoints, seed)
        return
    import torch

    check_devices(params.train, launcher, torch.cuda.device_count())
    launch = None
    if launcher.name != "none":
        config_file = write_accelerate_config(launcher, out / "accelerate.yaml")

        def launch(k: int) -> None:
            relaunch = launch_command(config_file, command, k)
            print("train: " + " ".join(relaunch), flush=True)
            if (code := subprocess.call(relaunch)) != 0:
                sys.exit(code)

    result = train(phases, params.model, params.train, out, checkpoints, seed, launch)
    finish(params, result, out, metrics, curve, checkpoints)
