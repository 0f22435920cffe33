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
        """`ex`: the request's record (its `ended_with`: the error status a stream ended with after its 200; `tried`
        and `failed_on`: the provider of each upstream attempt and of each failed one)."""
        self._seq += 1
        if ex is None:
            self._items.append((self._seq, time.time(), fields, 0, (), ()))
        else:
            self._items.append((self._seq, time.time(), fields, ex.ended_with, ex.tried, ex.failed_on))

    def after(self, seq: int, limit: int = SHOWN_REQUESTS) -> list[dict[str, Any]]:
        return [_request(item) for item in [i for i in self._items if i[0] > seq][-limit:]]

    def all(self) -> list[dict[str, Any]]:
        return [_request(item) for item in self._items]

    def attempts(self) -> dict[str, tuple[int, int]]:
        """Provider -> (attempts, failed attempts) over the kept requests: every attempt a request made counts
        for the provider it went to, so a failure that a retry or a fallback answered counts against the
        provider that failed."""
        tally: dict[str, list[int]] = {}
        for _, _, fields, ended_with, tried, failed_on in self._items:
            for provider, attempts, failed in _attempts(fields, ended_with, tried, failed_on):
                counts = tally.setdefault(provider, [0, 0])
                counts[0] += attempts
                counts[1] += failed
        return {provider: (counts[0], counts[1]) for provider, counts in tally.items()}

    @property
    def last(self) -> int:
        return self._seq


_Request = tuple[int, float, dict[str, object], int, tuple[str, ...], tuple[str, ...]]


def _attempts(fields: dict[str, object], ended_with: int, tried: tuple[str, ...],
              failed_on: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """(provider, attempts, failed) of one request. A failed attempt is one the upstream failed (what
    agentgate_upstream_errors_total counts); the answer the request ended with fails too when its status, or the
    error its stream ended with, is 500 or more and no failed attempt of its provider already stands for it (an
    error event the upstream sent in its own shape, the router's own failure)."""
    final = fields.get("provider")
    if not isinstance(final, str) or not final:
        final = None
    if not tried:  # a record without its attempts: the provider it ended on, once
        tried = (final,) if final is not None else ()
    out = []
    for provider in dict.fromkeys(tried):
        attempts, failed = tried.count(provider), failed_on.count(provider)
        if provider == final and failed < attempts and _failed(fields.get("status"), ended_with):
            failed += 1
        out.append((provider, attempts, min(failed, attempts)))
    return out


def _failed(status: object, ended_with: int) -> bool:
    """A status of 500 or more, as the client saw it or as its stream ended after a 200."""
    return (isinstance(status, int) and status >= 500) or ended_with >= 500


def _request(item: _Request) -> dict[str, Any]:
    """A recent request as the console reads it: its access-log fields, and `ended_with` for a stream that ended
    with an error event after its 200 (the status /metrics counts it with)."""
    seq, ts, fields, ended_with, _, _ = item
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
