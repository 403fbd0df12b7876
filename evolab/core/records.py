"""Instruction records: reading seed sets (JSON, JSONL, Hugging Face) and JSONL I/O."""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Self, TypeVar

from evolab.core.errors import ConfigError

Record = dict[str, Any]


@dataclass(kw_only=True)
class Row:
    """A JSONL row read by name: a subclass declares the fields evolab reads; `more` keeps every other field of the
    row, in its order, so that a row read and written back is the row it was."""
    more: Record = field(default_factory=dict)

    @classmethod
    def of(cls, row: Record) -> Self:
        named = [f.name for f in fields(cls) if f.name != "more"]
        return cls(**{name: row[name] for name in named if name in row},
                   more={key: value for key, value in row.items() if key not in named})

    def row(self) -> Record:
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "more"}, **self.more}


R = TypeVar("R", bound=Row)


@dataclass
class Item(Row):
    """A training item: a row of data/merged.jsonl and of every set made from it (results/verification.jsonl,
    data/verified.jsonl, data/train.jsonl, data/controls/*.jsonl). `more` holds what it carries from its method for
    verification and pricing (CARRIED, teacher_tokens) and what verification adds (first_output, verdict, tests...)."""
    id: str             # ID@rK: the method's record ID in round K
    round: int
    part: str           # the method that made it
    instruction: str
    input: str
    output: str         # what the student learns


@dataclass
class Problem(Row):
    """A benchmark problem, a row of the file evalplus reads (HumanEval's format). `more` holds what evalplus's
    checker reads and evolab does not (base_input, plus_input, atol, contract), and a source's `test`, HumanEval's
    check(candidate) function."""
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str = ""


@dataclass
class Nearest(Row):
    """A training item's nearest benchmark problem (results/similarity.jsonl): the embedding cosine of its instruction
    to that problem's prompt, and its TF-IDF cosine to the nearest problem with its solution (None: not measured)."""
    id: str
    round: int
    part: str
    nearest_task: str
    similarity: float
    tfidf: float | None = None


def read_rows(kind: type[R], path: str | Path) -> list[R]:
    """The rows of a JSONL file as `kind`; a row without a field `kind` needs is a ConfigError naming the file, the
    line and the fields."""
    needed = [f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING]
    rows = []
    for number, row in numbered_jsonl(path):
        if missing := [name for name in needed if name not in row]:
            raise ConfigError(f"{path}, line {number}: {kind.__name__} rows need {', '.join(needed)}; this one lacks "
                              f"{', '.join(missing)}. Write the file with the stage that makes it (docs/pipeline.md).")
        rows.append(kind.of(row))
    return rows


def read_items(path: str | Path) -> list[Item]:
    return read_rows(Item, path)


def write_rows(rows: Iterable[Row], path: str | Path) -> None:
    write_jsonl((row.row() for row in rows), path)


@dataclass
class MethodRecord(Row):
    """What every method writes, one per teacher call or seed (data/seed.jsonl, data/evolve/rK.jsonl,
    data/generated/NAME.jsonl); merge keeps those with `kept` and a non-empty `output`. `more` holds a method's own
    fields (heuristic, seed, task...) and what a source carries (CARRIED)."""
    id: str
    round: int                  # 0: seed or generated; K: evolution round K
    instruction: str
    input: str
    output: str                 # the teacher's answer: what the student learns
    kept: bool
    reason: str                 # "kept", or why not, one word per failure (e.g. truncated_instruction, teacher_error)
    errors: list[str] = field(default_factory=list)   # the failed attempts of a call that never succeeded
    part: str = "code_evol"     # the method that made it (MagicoderS has two)


def read_records(path: str | Path) -> list[MethodRecord]:
    return read_rows(MethodRecord, path)


# What a source may carry for verification (evolab's task suite: its own asserts and the function they call).
CARRIED = ("tests", "entry_point")


def merge_records(records: list[MethodRecord]) -> tuple[list[Item], dict[str, Any]]:
    """The kept records with an answer, as training items (id `ID@rK`, their part, what verification needs, what
    they cost the teacher), and their counts per round and per part."""
    merged = [Item(id=f"{r.id}@r{r.round}", round=r.round, part=r.part, instruction=r.instruction, input=r.input,
                   output=r.output, more={k: r.more[k] for k in (*CARRIED, "teacher_tokens") if k in r.more})
              for r in records if r.kept and r.output.strip()]
    return merged, {"merged_items": len(merged), "items_per_round": dict(Counter(f"r{item.round}" for item in merged)),
                    "items_per_part": dict(Counter(item.part for item in merged))}


def read_text(path: str | Path) -> str:
    """A text file as UTF-8, or a ConfigError naming the file, the line of the first bad byte and the fix."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 (byte {raw[err.start]:#04x} at offset {err.start}). Save the file as "
                          f"UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > fixed.jsonl`.") from None


def numbered_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """(line number in the file, parsed value) per non-blank line; a broken line is a ConfigError with its number."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno}): "
                              "JSONL holds one JSON object per line; fix or remove that line.") from None
    return rows


def read_jsonl(path: str | Path) -> list[Record]:
    return [value for _, value in numbered_jsonl(path)]


def write_whole(path: str | Path, lines: Iterable[str]) -> None:
    """A stage's output written whole or not at all: a stage killed while writing leaves the previous file (or
    none), never half of the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    os.replace(partial, path)


def write_jsonl(records: Iterable[Record], path: str | Path) -> None:
    write_whole(path, (json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def _parse_seed_file(path: Path) -> tuple[list[Any], list[str]]:
    """The records of a JSON list or a JSONL file, and where each is (`line N` for JSONL)."""
    if path.suffix != ".json":
        rows = numbered_jsonl(path)
        return [value for _, value in rows], [f"line {number}" for number, _ in rows]
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}): fix the file or point seed_data.path "
                          "at another one.") from None
    if not isinstance(data, list):
        raise ConfigError(f"seed file {path} must hold a JSON list of records: fix it or use JSONL, one record per line.")
    return data, [f"record {index}" for index in range(len(data))]


def validate_records(records: list[Any], origin: str, where: list[str] | None = None) -> list[Record]:
    """Every record an object with a non-empty string 'instruction' and, when present, string 'input' and 'output'."""
    if not records:
        raise ConfigError(f"seed data {origin} is empty: give at least one {{instruction, output}} record.")
    for index, record in enumerate(records):
        at = f"{origin}, {where[index] if where else f'record {index}'}"
        if not isinstance(record, dict):
            raise ConfigError(f"{at}: a record must be a JSON object with an 'instruction', got {type(record).__name__}.")
        if not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            raise ConfigError(f"{at}: needs a non-empty string 'instruction' (and optionally 'input', 'output'), "
                              f"got {record.get('instruction')!r}.")
        wrong = [field for field in ("input", "output") if record.get(field) is not None and not isinstance(record[field], str)]
        if wrong:
            raise ConfigError(f"{at}: {', '.join(wrong)} must be text, got "
                              f"{', '.join(type(record[field]).__name__ for field in wrong)}; quote the value or drop the field.")
    return records


def check_seed_source(path: str | None, hf_dataset: str | None) -> int | None:
    """Fail early on a local seed file (seed_data.path) that is missing, empty, malformed or lacks instructions;
    returns its number of records (None for a Hugging Face dataset, seed_data.hf_dataset, not read until the seed
    stage)."""
    if hf_dataset:
        return None
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"seed file {path} does not exist: set seed_data.path to a JSON/JSONL file of "
            "instruction records (e.g. `dvc exp run -S seed_data.path=my_seeds.jsonl`)."
        )
    records, where = _parse_seed_file(path)
    return len(validate_records(records, str(path), where))


def load_seed_records(path: str | None, hf_dataset: str | None = None, hf_split: str = "train") -> list[Record]:
    """The seed records of seed_data: its Hugging Face dataset's split when it names one, else its file."""
    if hf_dataset:
        import datasets

        rows = list(datasets.load_dataset(hf_dataset, split=hf_split))
        return validate_records(rows, f"Hugging Face dataset {hf_dataset}")
    path = Path(path)
    records, where = _parse_seed_file(path)
    return validate_records(records, str(path), where)
