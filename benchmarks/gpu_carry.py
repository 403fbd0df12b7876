"""What a lease on the lent GPU machine needs carried: wheels for the packages its image lacks, and a tokenizer.

    python benchmarks/gpu_carry.py        # writes .gpu/ (git-ignored): wheels/, tokenizer/, carry.json

The lent machine (one H200) runs Python 3.12 with its own image's torch, transformers, accelerate and peft
(`benchmarks/gpu_machine.yaml` lists its packages) and reaches no network, so what the GPU steps import
beyond that image travels in the call's 64 MiB: wheels for CPython 3.12, each at the version installed here
(the one the tests ran), built here where PyPI has only a source archive (antlr4-python3-runtime, DeepSpeed
without its compiled ops: they build on first use there). No hub either: the random student takes the
embedded model's tokenizer from `.gpu/tokenizer`, saved here from the GGUF file.
On the machine, `benchmarks/gpu_lease.sh` installs the wheels with `pip install --no-index --no-deps --target`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MACHINE = ROOT / "benchmarks/gpu_machine.yaml"
# The device tool's limit on what travels, working tree included.
LIMIT_MIB = 64
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def machine() -> dict:
    return yaml.safe_load(MACHINE.read_text())


def pins(names: list[str]) -> list[str]:
    """Each package at the version installed here."""
    return [f"{name}=={version(name)}" for name in names]


def download(pin: str, wheels: Path, python: str) -> None:
    """The CPython `python` wheel of `pin`; built here from PyPI's source archive where there is no wheel."""
    binary = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
              "--python-version", python, *[f"--platform={p}" for p in PLATFORMS], "-d", str(wheels), pin]
    if subprocess.run(binary, capture_output=True, text=True).returncode == 0:
        return
    env = {"DS_BUILD_OPS": "0"}  # DeepSpeed: no compiled ops in the wheel (they build on the GPU machine when first used)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), pin],
                           capture_output=True, text=True, env={**os.environ, **env})
    if built.returncode != 0:
        raise SystemExit(f"gpu_carry: no wheel of {pin} for CPython {python}, and building one failed:\n{built.stderr[-2000:]}")


def check_tags(wheels: Path, python: str) -> None:
    """Every wheel installs on CPython `python` (a wheel built here for this Python alone would not)."""
    cp = "cp" + python.replace(".", "")
    wrong = [w.name for w in wheels.glob("*.whl") if not (w.name.endswith("-none-any.whl") or f"-{cp}-" in w.name or "-abi3-" in w.name)]
    if wrong:
        raise SystemExit(f"gpu_carry: {', '.join(wrong)} will not install on CPython {python}")


def save_tokenizer(out: Path) -> None:
    from transformers import AutoTokenizer

    sys.path.insert(0, str(ROOT))
    from evolab.core.models import resolve_gguf

    gguf = resolve_gguf("qwen2.5-coder-0.5b-instruct")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)


def mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def tree_mib() -> float:
    """What the device tool sends besides the carry: tracked and untracked, not ignored, files."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    args = parser.parse_args()
    spec = machine()
    wheels = args.out / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)  # one version of each: two stop the install there
    wheels.mkdir(parents=True, exist_ok=True)
    carried = pins(spec["carry"])
    for pin in carried:
        download(pin, wheels, spec["python"])
    check_tags(wheels, spec["python"])
    save_tokenizer(args.out / "tokenizer")
    sizes = {"wheels_mib": round(mib(wheels), 1), "tokenizer_mib": round(mib(args.out / "tokenizer"), 1), "tree_mib": round(tree_mib(), 1)}
    total = sum(sizes.values())
    (args.out / "carry.json").write_text(json.dumps({"python": spec["python"], "wheels": carried, **sizes}, indent=2) + "\n")
    print(f"gpu_carry: {len(carried)} wheels ({sizes['wheels_mib']} MiB), tokenizer ({sizes['tokenizer_mib']} MiB), "
          f"working tree {sizes['tree_mib']} MiB: {total:.1f} of the {LIMIT_MIB} MiB a call carries")
    if total > LIMIT_MIB:
        raise SystemExit(f"gpu_carry: {total:.1f} MiB is over the {LIMIT_MIB} MiB a call carries")


if __name__ == "__main__":
    main()
