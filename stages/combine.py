"""combine@parts: a method's generated and evolved data in one file (MagicoderS: OSS-Instruct and
Code Evol-Instruct), so that merge depends on one file whatever the method."""
from __future__ import annotations

from evolab.core import config as P
from evolab.core.records import Record, read_jsonl, write_jsonl


def combine(generated: list[Record], evolved: list[Record]) -> list[Record]:
    return generated + [{**r, "part": r.get("part", "code_evol")} for r in evolved]


def main() -> None:
    spec = P.load()["combine_stage"]["parts"]
    write_jsonl(combine(read_jsonl(spec["generated"]), read_jsonl(spec["evolved"])), spec["out"])


if __name__ == "__main__":
    P.run(main)
