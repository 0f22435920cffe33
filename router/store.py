"""The response store behind `/v1/responses`: stored responses and the conversation that led to them, so that
`previous_response_id` can continue a conversation on a stateless backend.

An embedded SQLite database (stdlib `sqlite3`), bounded by row count and age, pruned on every write. Each call
is one short statement run in a worker thread. A response is only visible to the client key that created it: rows
are owned by a keyed digest of the key itself (HMAC-SHA256 under a random secret kept in the database), so
renaming, reordering or removing keys never hands one key's conversations to another. A stored response's output
items, and its input items as `input_items` lists them, are kept by their ids too, under the same owner, and go
with it: a later request's `item_reference` input names one (an output item of a failed response is marked, and
refused as that response is).

Location: `$AGENTGATE_STATE_DIR/responses.sqlite3`, else `$XDG_STATE_HOME/agentgate/…`, else
`~/.local/state/agentgate/responses.sqlite3`. Bounds: `AGENTGATE_RESPONSES_MAX_ROWS` (default 10000) and
`AGENTGATE_RESPONSES_MAX_AGE_DAYS` (default 30), and `AGENTGATE_RESPONSES_MAX_ROW_MB` (default 16) and
`AGENTGATE_RESPONSES_MAX_CONTAINERS` (default 100000 JSON objects and arrays: parsed, each costs ~30x its bytes) per
stored response (the bytes: all it holds, its items kept by id too; the objects and arrays: its row, what a load
parses): a larger one is not stored (logged), and one stored under a higher bound is refused when loaded
(`ConversationTooLarge`), never parsed. An unusable location falls back to memory (logged); so does a
database that fails at run time (replaced underneath, locked elsewhere, disk full): the cause is logged once and
the router keeps answering, never with a 500 and never waiting in line behind a lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("agentgate")
T = TypeVar("T")

FILENAME = "responses.sqlite3"
MEMORY = ":memory:"
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0
DEFAULT_MAX_ROW_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_CONTAINERS = 100_000  # 450k one-character messages (14.6 MiB) cost ~160 MiB each time they were loaded
BUSY_TIMEOUT = 0.5  # seconds a statement waits for a lock held by another process before the store degrades
_IDS_PER_QUERY = 500  # ids looked up in one statement (SQLite's bound on parameters is 999 in older builds)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    owner TEXT NOT NULL,
    response TEXT NOT NULL,
    messages TEXT NOT NULL,
    previous TEXT NOT NULL DEFAULT '',
    summarized TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
CREATE TABLE IF NOT EXISTS items (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    resp_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    item TEXT NOT NULL,
    of_failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS items_resp ON items (resp_id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def _json_text(value: Any) -> tuple[str, int]:
    """`value` as JSON text that UTF-8 can hold, and its size in UTF-8: a lone surrogate (an upstream can send one)
    is written as its escape, the rest as it is."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        return text, len(text.encode())
    except UnicodeEncodeError:
        text = json.dumps(value)
        return text, len(text)


class RowTooLarge(ValueError):
    """A response (with its conversation) over the per-row bound: it is not stored."""


class ConversationTooLarge(ValueError):
    """A stored response (with its conversation) over the store's bound on objects and arrays: not loaded."""


class DuplicateItem(Exception):
    """An item looked up by id is already in the conversation a `previous_response_id` continues: of that
    response, or of one before it in its chain (sent again, the model would read it twice)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class ItemOfFailedResponse(Exception):
    """An item looked up by id is an output item of a response stored `failed`: its answer never ended, so the
    item is no more to continue from than the response is (a `previous_response_id` naming it is refused)."""

    def __init__(self, item_id: str, resp_id: str) -> None:
        super().__init__(item_id, resp_id)
        self.item_id = item_id
        self.resp_id = resp_id


def _containers(*texts: str) -> int:
    """The JSON objects and arrays in `texts` (their `{` and `[`, strings' included: never under)."""
    return sum(t.count("{") + t.count("[") for t in texts)


@dataclass
class StoredResponse:
    id: str
    owner: str | None  # `ResponseStore.owner_of(the client key)`; None when the router has no keys
    response: dict[str, Any]  # the Response object as returned
    messages: list[dict[str, Any]]  # the conversation in chat form (without instructions), output included
    created: float = 0.0
    inputs: list[dict[str, Any]] = field(default_factory=list)  # the input items listed for it, each with its id
    summarized: tuple[int, ...] = ()  # where in `messages` an assistant message's reasoning was the client's with
    # a summary (`dialects.responses.Conversation`): its text is in `messages` once, never stored again


def _positions(text: str) -> tuple[int, ...]:
    """`StoredResponse.summarized` as stored (a JSON array; "" for none, as a row an earlier release wrote)."""
    if not text:
        return ()
    value = json.loads(text)
    return tuple(i for i in value if type(i) is int and i >= 0) if isinstance(value, list) else ()


def _named_items(item: StoredResponse) -> list[tuple[dict[str, Any], bool]]:
    """A stored Response's output and input items that have an id (a later request may name them:
    `item_reference`), each with whether it is an output item of a failed response."""
    output = item.response.get("output")
    failed = item.response.get("status") == "failed"
    items = [*((it, failed) for it in (output if isinstance(output, list) else [])),
             *((it, False) for it in item.inputs)]
    return [(it, of_failed) for it, of_failed in items if isinstance(it, dict) and isinstance(it.get("id"), str)]


def _check_items(ids: list[str], rows: list[tuple[str, str, str, int]], chain: set[str]) -> None:
    """Items found for `ids` (`rows`: id, JSON, response id, of a failed response) that cannot be referenced: one
    of a response in `chain` (`DuplicateItem`), one output by a failed response (`ItemOfFailedResponse`)."""
    where = {item_id: (resp_id, bool(of_failed)) for item_id, _, resp_id, of_failed in rows}
    for item_id in ids:
        resp_id, of_failed = where.get(item_id, ("", False))
        if resp_id in chain:
            raise DuplicateItem(item_id)
        if of_failed:
            raise ItemOfFailedResponse(item_id, resp_id)


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
                 max_age: float = DEFAULT_MAX_AGE, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
                 max_containers: int = DEFAULT_MAX_CONTAINERS) -> None:
        self.path = str(path)
        self.max_containers = max_containers
        self.max_rows = max_rows
        self.max_age = max_age
        self.max_row_bytes = max_row_bytes
        self._lock = threading.Lock()
        self._db = self._open(self.path)
        self._secret = self._owner_secret(self._db)

    def owner_of(self, key: str | None) -> str | None:
        """The stable identity a client key's rows are stored under (None without keys): a keyed digest, so the
        database never holds the key and two keys never share an owner."""
        if key is None:
            return None
        return hmac.new(self._secret, key.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    @staticmethod
    def _owner_secret(db: sqlite3.Connection) -> bytes:
        db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('owner_secret', ?)", (os.urandom(32),))
        return bytes(db.execute("SELECT value FROM meta WHERE name = 'owner_secret'").fetchone()[0])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResponseStore:
        env = os.environ if env is None else env
        path = default_path(env)
        max_rows = int(_positive(env, "AGENTGATE_RESPONSES_MAX_ROWS", DEFAULT_MAX_ROWS))
        max_age = _positive(env, "AGENTGATE_RESPONSES_MAX_AGE_DAYS", DEFAULT_MAX_AGE / 86400) * 86400
        max_row = int(_positive(env, "AGENTGATE_RESPONSES_MAX_ROW_MB", DEFAULT_MAX_ROW_BYTES / 2**20) * 2**20)
        max_containers = int(_positive(env, "AGENTGATE_RESPONSES_MAX_CONTAINERS", DEFAULT_MAX_CONTAINERS))
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return cls(path, max_rows=max_rows, max_age=max_age, max_row_bytes=max_row, max_containers=max_containers)
        except (OSError, sqlite3.Error) as exc:
            log.warning("response store %s is unusable (%s); keeping responses in memory", path, exc)
            return cls(MEMORY, max_rows=max_rows, max_age=max_age, max_row_bytes=max_row,
                       max_containers=max_containers)

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        if path != MEMORY and not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # conversations are private
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
        try:
            db.execute("PRAGMA foreign_keys=ON")  # a response's items go with it (pruned, replaced or deleted)
            if path != MEMORY:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            ResponseStore._migrate(db)
        except sqlite3.Error:
            db.close()
            raise
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """A database an earlier release wrote, brought up to this schema (its items are of no failed response; its
        responses continue none: their chains end there; their reasoning is listed without a summary)."""
        for table, column, kind in (("items", "of_failed", "INTEGER NOT NULL DEFAULT 0"),
                                    ("responses", "previous", "TEXT NOT NULL DEFAULT ''"),
                                    ("responses", "summarized", "TEXT NOT NULL DEFAULT ''")):
            if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- blocking operations (run in a thread by the async API) --------------------------------------------------

    def _degrade(self, exc: BaseException) -> None:
        """The database failed at run time: log the cause once and keep going in memory (called under the lock)."""
        log.warning("response store %s failed (%s: %s); keeping responses in memory from now on", self.path,
                    type(exc).__name__, exc)
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self.path = MEMORY
        self._db = self._open(MEMORY)
        self._db.execute("INSERT INTO meta (name, value) VALUES ('owner_secret', ?)", (self._secret,))

    def _locked(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` under the lock; a database failure degrades the store to memory and runs it there. The lock
        is never waited on longer than one statement's busy timeout: no convoy behind a lock held elsewhere."""
        with self._lock:
            try:
                return op(self._db)
            except sqlite3.Error as exc:
                self._degrade(exc)
                return op(self._db)

    def _put(self, item: StoredResponse) -> None:
        now = time.time()
        (response, response_size), (messages, messages_size) = _json_text(item.response), _json_text(item.messages)
        summarized = json.dumps(list(item.summarized)) if item.summarized else ""
        named = [(it, of_failed, *_json_text(it)) for it, of_failed in _named_items(item)]
        # every byte it holds: its row, and its items kept by id (its output items again, its input items as listed)
        size = response_size + messages_size + len(summarized) + sum(item_size for *_, item_size in named)
        if size > self.max_row_bytes:
            raise RowTooLarge(f"response {item.id} is {size} bytes with its conversation and the items kept by id, "
                              f"over the store's per-response bound of {self.max_row_bytes} bytes "
                              "(AGENTGATE_RESPONSES_MAX_ROW_MB)")
        containers = _containers(response, messages, summarized)
        if containers > self.max_containers:
            raise RowTooLarge(f"response {item.id} has {containers} JSON objects and arrays with its conversation, "
                              f"over the store's bound of {self.max_containers} (AGENTGATE_RESPONSES_MAX_CONTAINERS)")
        previous = item.response.get("previous_response_id")
        row = (item.id, item.created or now, item.owner or "", response, messages,
               previous if isinstance(previous, str) else "", summarized)
        items = [(item.owner or "", it["id"], item.id, text, int(of_failed)) for it, of_failed, text, _ in named]

        def put(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            try:
                db.execute("INSERT OR REPLACE INTO responses (id, created, owner, response, messages, previous, "
                           "summarized) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
                db.executemany("INSERT OR REPLACE INTO items (owner, id, resp_id, item, of_failed) "
                               "VALUES (?, ?, ?, ?, ?)", items)
                db.execute("DELETE FROM responses WHERE created < ?", (now - self.max_age,))
                db.execute("DELETE FROM responses WHERE id IN (SELECT id FROM responses ORDER BY created DESC "
                           "LIMIT -1 OFFSET ?)", (self.max_rows,))
                db.execute("COMMIT")
            except BaseException:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:  # nothing to roll back (the failure ended the transaction): keep its cause
                    pass
                raise

        self._locked(put)

    def _get(self, resp_id: str, owner: str | None) -> StoredResponse | None:
        row = self._locked(lambda db: db.execute(
            "SELECT id, created, owner, response, messages, summarized FROM responses "
            "WHERE id = ? AND owner = ? AND created >= ?",
            (resp_id, owner or "", time.time() - self.max_age)).fetchone())
        if row is None:
            return None
        containers = _containers(row[3], row[4], row[5])
        if containers > self.max_containers:
            raise ConversationTooLarge(f"The stored response {resp_id[:64]!r} has {containers} JSON objects and "
                                       f"arrays with its conversation, over the store's bound of "
                                       f"{self.max_containers} (AGENTGATE_RESPONSES_MAX_CONTAINERS); it is not "
                                       "loaded.")
        return StoredResponse(id=row[0], created=row[1], owner=row[2] or None, response=json.loads(row[3]),
                              messages=json.loads(row[4]), summarized=_positions(row[5]))

    def _items(self, ids: list[str], owner: str | None, continued: str | None = None) -> dict[str, dict[str, Any]]:
        """The output and input items of `owner`'s stored responses that have these ids (those it has), by id; together
        bounded as one stored response with its conversation is (`ConversationTooLarge`, never parsed). The first of
        `ids` that is already in the conversation response `continued` ends raises `DuplicateItem`; the first that
        is an output item of a failed response, `ItemOfFailedResponse`."""
        rows: list[tuple[str, str, str, int]] = []
        cutoff = time.time() - self.max_age
        for start in range(0, len(ids), _IDS_PER_QUERY):
            rows += self._item_rows(ids[start:start + _IDS_PER_QUERY], owner, cutoff)
        _check_items(ids, rows, self._chain(continued, owner) if continued else set())
        texts = [text for _, text, _, _ in rows]
        size, containers = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts), _containers(*texts)
        if size > self.max_row_bytes or containers > self.max_containers:
            raise ConversationTooLarge(f"The {len(rows)} stored items referenced are {size} bytes with {containers} "
                                       "JSON objects and arrays, over the store's bound for one response with its "
                                       f"conversation ({self.max_row_bytes} bytes, {self.max_containers} objects "
                                       "and arrays); they are not loaded. Send the items themselves instead.")
        return {item_id: json.loads(text) for item_id, text, _, _ in rows}

    def _item_rows(self, ids: list[str], owner: str | None, cutoff: float) -> list[tuple[str, str, str, int]]:
        """(id, item JSON, its response's id, whether it is an output item of a failed response) of `owner`'s items
        with these ids whose response is stored and not too old."""
        query = ("SELECT items.id, items.item, items.resp_id, items.of_failed "
                 "FROM items JOIN responses ON responses.id = items.resp_id "
                 f"WHERE items.owner = ? AND items.id IN ({', '.join('?' * len(ids))}) AND responses.created >= ?")

        def select(db: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
            return db.execute(query, (owner or "", *ids, cutoff)).fetchall()

        return self._locked(select)

    def _chain(self, resp_id: str, owner: str | None) -> set[str]:
        """The ids of `owner`'s stored responses whose conversation response `resp_id` continues, its own with
        them (each stored response names the one it continued)."""
        query = ("WITH RECURSIVE chain(id) AS (SELECT ? UNION SELECT responses.previous FROM responses "
                 "JOIN chain ON responses.id = chain.id WHERE responses.owner = ? AND responses.previous != '') "
                 "SELECT id FROM chain LIMIT ?")

        def select(db: sqlite3.Connection) -> list[tuple[str]]:
            return db.execute(query, (resp_id, owner or "", self.max_rows + 1)).fetchall()

        return {row[0] for row in self._locked(select)}

    def _delete(self, resp_id: str, owner: str | None) -> bool:
        cur = self._locked(lambda db: db.execute("DELETE FROM responses WHERE id = ? AND owner = ?",
                                                 (resp_id, owner or "")))
        return cur.rowcount > 0

    def count(self) -> int:
        return int(self._locked(lambda db: db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]))

    # --- async API -------------------------------------------------------------------------------------------

    async def put(self, item: StoredResponse) -> None:
        await asyncio.to_thread(self._put, item)

    async def get(self, resp_id: str, owner: str | None) -> StoredResponse | None:
        return await asyncio.to_thread(self._get, resp_id, owner)

    async def items(self, ids: list[str], owner: str | None, continued: str | None = None) -> dict[str, dict[str, Any]]:
        """The output and input items stored for `owner` under these ids (what an `item_reference` names), by
        id; `DuplicateItem` when one is already in the conversation response `continued` ends,
        `ItemOfFailedResponse` when one is an output item of a failed response."""
        return await asyncio.to_thread(self._items, ids, owner, continued)

    async def delete(self, resp_id: str, owner: str | None) -> bool:
        return await asyncio.to_thread(self._delete, resp_id, owner)
