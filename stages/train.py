"""train: fine-tune the student on the decontaminated data (train.method: lora or full), in one phase or,
for MagicoderS, one phase per part (method.train_phases); with a launcher, each phase under `accelerate launch`
(evolab/training/run.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evolab.core import paths
from evolab.core.config import load
from evolab.core.stage import run_stage
from evolab.training.run import PHASE_FLAG, WORKER_FLAG, run


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.train")
    parser.add_argument("--data", type=Path, default=Path(paths.TRAIN))
    parser.add_argument("--out", type=Path, default=Path("models/tuned"))
    parser.add_argument("--metrics", type=Path, default=Path(paths.TRAIN_METRICS))
    parser.add_argument("--curve", type=Path, default=Path(paths.TRAIN_LOSS), help="loss per step (CSV)")
    parser.add_argument(WORKER_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(PHASE_FLAG, type=int, default=0, help=argparse.SUPPRESS)  # the phase a worker trains
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    command = ["-m", "stages.train", *sys.argv[1:]]  # relaunched per phase under a launcher
    run(load(), args.data, args.out, args.metrics, args.curve, command, args.phase if args.worker else None)


if __name__ == "__main__":
    run_stage(main)
