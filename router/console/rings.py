"""Bounded in-memory views for the console: the recent requests (fed where the access log is written) and the
router's log lines (a logging handler on the `agentgate` logger).

Both are written on every request and read only when the console asks, so they keep tuples and build the dicts
they answer with when asked. The recent requests keep the access record's fields as handed over (built once per
request, only read afterwards)."""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from typing import Any

MAX_REQUESTS = 500  # kept for the providers' recent error rates
SHOWN_REQUESTS = 200  # what the page lists (its MAX_ROWS): the newest ones after what it saw
MAX_LOG_LINES = 1000
MAX_LOG_CHARS = 2000


class RecentRequests:
    """The last MAX_REQUESTS access-log records, numbered so a client can ask for what came after the last one
    it saw; `epoch` (random, one per instance: per router process) tells a reader whose numbers it holds, since a
    restarted router numbers from 1 again."""

    def __init__(self, size: int = MAX_REQUESTS) -> None:
        self._items: deque[_Request] = deque(maxlen=size)
        self._seq = 0
        self.epoch = secrets.token_hex(8)

    def observe(self, ex: Any, fields: dict[str, object]) -> None:
        """`ex`: the request's record (its `ended_with`: the error status a stream ended with after its 200)."""
        self._seq += 1
        self._items.append((self._seq, time.time(), fields, ex.ended_with if ex is not None else 0))

    def after(self, seq: int, limit: int = SHOWN_REQUESTS) -> list[dict[str, Any]]:
        return [_request(item) for item in [i for i in self._items if i[0] > seq][-limit:]]

    def all(self) -> list[dict[str, Any]]:
        return [_request(item) for item in self._items]

    @property
    def last(self) -> int:
        return self._seq


_Request = tuple[int, float, dict[str, object], int]


def _request(item: _Request) -> dict[str, Any]:
    """A recent request as the console reads it: its access-log fields, and `ended_with` for a stream that ended
    with an error event after its 200 (the status /metrics counts it with)."""
    seq, ts, fields, ended_with = item
    out = {"seq": seq, "ts": round(ts, 3), **fields}
    if ended_with:
        out["ended_with"] = ended_with
    return out


_Line = tuple[int, float, str, str, str, "dict[str, object] | None"]


class LogRing(logging.Handler):
    """The router's recent log lines (level, logger, message, structured fields), bounded in count and size,
    numbered like `RecentRequests` (with its own `epoch`)."""

    def __init__(self, size: int = MAX_LOG_LINES) -> None:
        super().__init__(logging.INFO)
        self._items: deque[_Line] = deque(maxlen=size)
        self._seq = 0
        self.epoch = secrets.token_hex(8)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not break logging
            msg = str(record.msg)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for value in fields.values():
                if isinstance(value, str) and len(value) > MAX_LOG_CHARS:
                    fields = {k: _short(v) for k, v in fields.items()}
                    break
            else:
                fields = fields.copy()
        else:
            fields = None
        self._seq += 1
        self._items.append((self._seq, record.created, record.levelname, record.name, msg[:MAX_LOG_CHARS], fields))

    def after(self, seq: int, limit: int = 500) -> list[dict[str, Any]]:
        return [_line(item) for item in [i for i in self._items if i[0] > seq][-limit:]]

    @property
    def last(self) -> int:
        return self._seq


def _line(item: _Line) -> dict[str, Any]:
    seq, created, level, name, msg, fields = item
    line: dict[str, Any] = {"seq": seq, "ts": round(created, 3), "level": level.lower(), "logger": name, "msg": msg}
    if fields is not None:
        line["fields"] = fields
    return line


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_LOG_CHARS:
        return value[:MAX_LOG_CHARS] + "..."
    return value
