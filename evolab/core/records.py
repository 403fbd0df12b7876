"""Instruction records: reading seed sets (JSON, JSONL, Hugging Face) and JSONL I/O."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, TypedDict

from evolab.core.errors import ConfigError

Record = dict[str, Any]


class MethodRecord(TypedDict, total=False):
    """What every method writes, one per teacher call or seed (data/evolve/rK.jsonl, data/generated/NAME.jsonl);
    merge keeps those with `kept` and a non-empty `output`. A method adds its own fields (heuristic, seed, task...)."""
    id: str
    round: int          # 0: seed or generated; K: evolution round K
    part: str           # the method that made it (MagicoderS has two)
    instruction: str
    input: str
    output: str         # the teacher's answer: what the student learns
    kept: bool
    reason: str         # "kept", or why not, one word per failure (e.g. truncated_instruction, teacher_error)
    errors: list[str]   # the failed attempts of a call that never succeeded


def read_jsonl(path: str | Path) -> list[Record]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(records: Iterable[Record], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _parse_seed_file(path: Path) -> list[Record]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            records = data if isinstance(data, list) else None
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"seed file {path} is not valid {'JSON' if path.suffix == '.json' else 'JSONL'} "
            f"(line {err.lineno}: {err.msg}): fix the file or point seed_data.path at another one."
        ) from err
    if records is None:
        raise ConfigError(f"seed file {path} must hold a JSON list of records: fix it or use JSONL, one record per line.")
    return records


def validate_records(records: list[Any], origin: str) -> list[Record]:
    if not records:
        raise ConfigError(f"seed data {origin} is empty: give at least one {{instruction, output}} record.")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not str(record.get("instruction") or "").strip():
            raise ConfigError(
                f"seed record {index} of {origin} lacks an 'instruction' field: every record needs "
                "a non-empty 'instruction' (and optionally 'input', 'output')."
            )
    return records


def check_seed_source(seed_data: dict[str, Any]) -> int | None:
    """Fail early on a local seed file that is missing, empty, malformed or lacks instructions;
    returns its number of records (None for a Hugging Face dataset, not read until the seed stage)."""
    if seed_data.get("hf_dataset"):
        return None
    path = Path(seed_data["path"])
    if not path.is_file():
        raise ConfigError(
            f"seed file {path} does not exist: set seed_data.path to a JSON/JSONL file of "
            "instruction records (e.g. `dvc exp run -S seed_data.path=my_seeds.jsonl`)."
        )
    return len(validate_records(_parse_seed_file(path), str(path)))


def load_seed_records(seed_data: dict[str, Any]) -> list[Record]:
    if seed_data.get("hf_dataset"):
        import datasets

        name = seed_data["hf_dataset"]
        rows = list(datasets.load_dataset(name, split=seed_data.get("hf_split", "train")))
        return validate_records(rows, f"Hugging Face dataset {name}")
    path = Path(seed_data["path"])
    return validate_records(_parse_seed_file(path), str(path))
