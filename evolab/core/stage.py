"""What every stage does around its work: run its main() (bad input ends it with the message, not a traceback), log
when it ran and how long (paths.STAGE_TIMES), and write its metrics whole."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from evolab.core.errors import ConfigError, StageError
from evolab.core.paths import STAGE_TIMES
from evolab.core.records import read_jsonl, write_whole


def dump_json(obj: Any, path: str | Path) -> None:
    """A metrics file, written whole or not at all (write_whole)."""
    write_whole(path, [json.dumps(obj, indent=2, sort_keys=True) + "\n"])


def stage_command() -> str:
    """This stage's command as dvc.yaml writes it (`python -m stages.evolve 1`)."""
    return " ".join(["python -m", f"stages.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


def stage_runs(root: str | Path = ".") -> list[dict[str, Any]]:
    """Every stage run run_stage recorded under `root` (paths.STAGE_TIMES), oldest first: its command, start, end,
    seconds and whether it finished."""
    times = Path(root) / STAGE_TIMES
    return read_jsonl(times) if times.exists() else []


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); bad input ends it with the message, not a traceback. When it ran and how long goes to
    paths.STAGE_TIMES (the ledger's stage times, the MLflow run's start)."""
    start, ok = time.time(), False
    try:
        main()
        ok = True
    except (ConfigError, StageError) as err:
        sys.exit(f"error: {err}")
    finally:
        end = time.time()
        Path(STAGE_TIMES).parent.mkdir(parents=True, exist_ok=True)
        with open(STAGE_TIMES, "a") as log:
            log.write(json.dumps({"cmd": stage_command(), "start": start, "end": end, "seconds": round(end - start, 2),
                                  "ok": ok}) + "\n")
