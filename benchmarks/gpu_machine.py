"""The lent GPU machine's Python packages imposed on a CPU, for the rehearsal of a lease (benchmarks/gpu_rehearsal.sh).

    python benchmarks/gpu_machine.py     # run by the rehearsal's Python: install, then check

Installs `rehearsal` from benchmarks/gpu_machine.yaml into the running interpreter's environment, removes what
pip brought that the machine's image does not hold, and fails if anything else is left: the steps that then run
see what they would see there, plus the carried wheels.
"""
from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import yaml

MACHINE = Path(__file__).resolve().parent / "gpu_machine.yaml"


def name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def foreign(allowed: set[str]) -> list[str]:
    """Installed distributions that the machine's image does not hold (pip and its build tools aside)."""
    return sorted({name(d.metadata["Name"]) for d in distributions()} - allowed - {"pip", "setuptools", "wheel"})


def main() -> None:
    spec = yaml.safe_load(MACHINE.read_text())
    allowed = {name(p) for p in spec["packages"]}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "-q", *spec["rehearsal"]], check=True)
    if extra := foreign(allowed):  # what pip brought as a need of a newer version than the image's
        subprocess.run([*pip, "uninstall", "-q", "-y", *extra], check=True)
    if extra := foreign(allowed):
        sys.exit(f"gpu_machine: {', '.join(extra)} installed but not on the machine (benchmarks/gpu_machine.yaml)")
    print(f"gpu_machine: {sys.executable} holds only packages of the machine's image")


if __name__ == "__main__":
    main()
