"""combine@parts: a method's generated and evolved data in one file (MagicoderS: OSS-Instruct and
Code Evol-Instruct), so that merge depends on one file whatever the method."""
from __future__ import annotations

from evolab.core.config import load
from evolab.core.records import Record, read_jsonl, write_jsonl
from evolab.core.stage import run_stage


def combine(generated: list[Record], evolved: list[Record]) -> list[Record]:
    return generated + [{**r, "part": r.get("part", "code_evol")} for r in evolved]


def main() -> None:
    spec = load().combine_stage["parts"]
    write_jsonl(combine(read_jsonl(spec.generated), read_jsonl(spec.evolved)), spec.out)


if __name__ == "__main__":
    run_stage(main)
