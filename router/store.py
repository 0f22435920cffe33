"""The response store behind `/v1/responses`: stored responses and the conversation that led to them, so that
`previous_response_id` can continue a conversation on a stateless backend.

An embedded SQLite database (stdlib `sqlite3`), bounded by row count and age, pruned on every write. Each call
is one short statement run in a worker thread. A response is only visible to the client key that created it.

Location: `$AGENTGATE_STATE_DIR/responses.sqlite3`, else `$XDG_STATE_HOME/agentgate/…`, else
`~/.local/state/agentgate/responses.sqlite3`. Bounds: `AGENTGATE_RESPONSES_MAX_ROWS` (default 10000) and
`AGENTGATE_RESPONSES_MAX_AGE_DAYS` (default 30). An unusable location falls back to memory (logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("agentgate")

FILENAME = "responses.sqlite3"
MEMORY = ":memory:"
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    owner TEXT NOT NULL,
    response TEXT NOT NULL,
    messages TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
"""


@dataclass
class StoredResponse:
    id: str
    owner: str | None  # the client key's name; None when the router has no keys
    response: dict[str, Any]  # the Response object as returned
    messages: list[dict[str, Any]]  # the conversation in chat form (without instructions), output included
    created: float = 0.0


def default_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("AGENTGATE_STATE_DIR"):
        return Path(env["AGENTGATE_STATE_DIR"]).expanduser() / FILENAME
    base = Path(env["XDG_STATE_HOME"]).expanduser() if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "agentgate" / FILENAME


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


class ResponseStore:
    def __init__(self, path: str | os.PathLike[str] = MEMORY, *, max_rows: int = DEFAULT_MAX_ROWS,
                 max_age: float = DEFAULT_MAX_AGE) -> None:
        self.path = str(path)
        self.max_rows = max_rows
        self.max_age = max_age
        self._lock = threading.Lock()
        self._db = self._open(self.path)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResponseStore:
        env = os.environ if env is None else env
        path = default_path(env)
        max_rows = int(_positive(env, "AGENTGATE_RESPONSES_MAX_ROWS", DEFAULT_MAX_ROWS))
        max_age = _positive(env, "AGENTGATE_RESPONSES_MAX_AGE_DAYS", DEFAULT_MAX_AGE / 86400) * 86400
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return cls(path, max_rows=max_rows, max_age=max_age)
        except (OSError, sqlite3.Error) as exc:
            log.warning("response store %s is unusable (%s); keeping responses in memory", path, exc)
            return cls(MEMORY, max_rows=max_rows, max_age=max_age)

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        if path != MEMORY and not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # conversations are private
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            if path != MEMORY:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- blocking operations (run in a thread by the async API) --------------------------------------------------

    def _put(self, item: StoredResponse) -> None:
        now = time.time()
        row = (item.id, item.created or now, item.owner or "", json.dumps(item.response, ensure_ascii=False),
               json.dumps(item.messages, ensure_ascii=False))
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("INSERT OR REPLACE INTO responses (id, created, owner, response, messages) "
                                 "VALUES (?, ?, ?, ?, ?)", row)
                self._db.execute("DELETE FROM responses WHERE created < ?", (now - self.max_age,))
                self._db.execute("DELETE FROM responses WHERE id IN (SELECT id FROM responses ORDER BY created DESC "
                                 "LIMIT -1 OFFSET ?)", (self.max_rows,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _get(self, resp_id: str, owner: str | None) -> StoredResponse | None:
        with self._lock:
            row = self._db.execute("SELECT id, created, owner, response, messages FROM responses "
                                   "WHERE id = ? AND owner = ? AND created >= ?",
                                   (resp_id, owner or "", time.time() - self.max_age)).fetchone()
        if row is None:
            return None
        return StoredResponse(id=row[0], created=row[1], owner=row[2] or None, response=json.loads(row[3]),
                              messages=json.loads(row[4]))

    def _delete(self, resp_id: str, owner: str | None) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM responses WHERE id = ? AND owner = ?", (resp_id, owner or ""))
        return cur.rowcount > 0

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # --- async API -------------------------------------------------------------------------------------------

    async def put(self, item: StoredResponse) -> None:
        await asyncio.to_thread(self._put, item)

    async def get(self, resp_id: str, owner: str | None) -> StoredResponse | None:
        return await asyncio.to_thread(self._get, resp_id, owner)

    async def delete(self, resp_id: str, owner: str | None) -> bool:
        return await asyncio.to_thread(self._delete, resp_id, owner)
