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
