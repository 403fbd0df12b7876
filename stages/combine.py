"""combine@parts: a method's generated and evolved data in one file (MagicoderS: OSS-Instruct and
Code Evol-Instruct), so that merge depends on one file whatever the method."""
from __future__ import annotations

from evolab.core.config import load
from evolab.core.records import read_records, write_rows
from evolab.core.stage import run_stage


def main() -> None:
    spec = load().combine_stage["parts"]
    write_rows(read_records(spec.generated) + read_records(spec.evolved), spec.out)


if __name__ == "__main__":
    run_stage(main)
