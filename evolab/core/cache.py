"""A persistent response cache: a killed round resumes where it stopped, a rerun makes no calls."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from evolab.core.errors import StageError


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class ResponseCache:
    """SQLite, one committed row per response: a SIGKILL loses at most the call in flight."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self._lock = threading.Lock()  # concurrent requests share one connection
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("SELECT key, value FROM responses LIMIT 1").fetchall()
            self._db.commit()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise StageError(f"{path} is not a response cache ({err}). Move it away (`mv {path} {path}.bad`): the answers "
                             "in it are then asked again; or point EVOLAB_CACHE at another folder.") from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def response_cache() -> ResponseCache:
    """The cache every stage shares: <cache_dir>/responses.sqlite (EVOLAB_CACHE moves it)."""
    from evolab.core.models import cache_dir
    from evolab.core.paths import RESPONSES

    return ResponseCache(cache_dir() / RESPONSES)


def locked_output(stage: str, path: str) -> Path | None:
    """Where DVC's cache holds `path` as the workspace's dvc.lock last recorded it for `stage` (None if it records
    none, or the cache lacks it): a stage's previous output, which DVC deletes from the workspace before it reruns
    the stage."""
    import yaml
    from dvc.repo import Repo

    lock = Path("dvc.lock")
    outs = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get(stage, {}).get("outs", []) if lock.exists() else []
    md5 = next((o.get("md5") for o in outs if o.get("path") == path), None)
    if not md5:
        return None
    with Repo(".") as repo:
        cached = Path(repo.cache.local.oid_to_path(md5))
    return cached if cached.is_file() else None


class CallLog:
    """A stage's teacher calls, written beside its data as a DVC output (calls/STAGE.jsonl, one {key, value} per
    answer), so that they travel with the experiment: another clone that runs `dvc pull` reruns the stage from them
    with no teacher call. Answers come from the stage's previous call log (read from DVC's cache, as the
    workspace's dvc.lock names it), then from the shared response cache; new ones go to both."""

    def __init__(self, shared: ResponseCache, stage: str, path: str):
        from evolab.core.records import read_jsonl

        self.shared, self.path = shared, path
        previous = locked_output(stage, path)
        self.logged = {row["key"]: row["value"] for row in read_jsonl(previous)} if previous else {}
        self.used: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        value = self.logged.get(key) or self.shared.get(key)
        if value is not None:
            with self._lock:
                self.used[key] = value
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.shared.put(key, value)
        with self._lock:
            self.used[key] = value

    def save(self) -> None:
        """The calls this run used, in key order (the same calls give the same file, and DVC the same hash)."""
        from evolab.core.records import write_jsonl

        write_jsonl(({"key": key, "value": self.used[key]} for key in sorted(self.used)), self.path)


Cache = ResponseCache | CallLog  # where a backend looks an answer up before asking for it


def stage_cache(stage: str) -> CallLog:
    """The cache a teacher stage uses: its call log (paths.calls) over the shared response cache."""
    from evolab.core.paths import calls

    return CallLog(response_cache(), stage, calls(stage))
