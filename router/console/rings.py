"""Bounded in-memory views for the console: the recent requests (fed where the access log is written) and the
router's log lines (a logging handler on the `agentgate` logger)."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

MAX_REQUESTS = 500
MAX_LOG_LINES = 1000
MAX_LOG_CHARS = 2000


class RecentRequests:
    """The last MAX_REQUESTS access-log records, numbered so a client can ask for what came after the last one
    it saw."""

    def __init__(self, size: int = MAX_REQUESTS) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def observe(self, ex: Any, fields: dict[str, object]) -> None:
        self._seq += 1
        self._items.append({"seq": self._seq, "ts": round(time.time(), 3), **fields})

    def after(self, seq: int, limit: int = 200) -> list[dict[str, Any]]:
        return [r for r in self._items if r["seq"] > seq][-limit:]

    def all(self) -> list[dict[str, Any]]:
        return list(self._items)

    @property
    def last(self) -> int:
        return self._seq


class LogRing(logging.Handler):
    """The router's recent log lines (level, logger, message, structured fields), bounded in count and size."""

    def __init__(self, size: int = MAX_LOG_LINES) -> None:
        super().__init__(logging.INFO)
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not break logging
            msg = str(record.msg)
        fields = getattr(record, "fields", None)
        self._seq += 1
        item: dict[str, Any] = {"seq": self._seq, "ts": round(record.created, 3), "level": record.levelname.lower(),
                                "logger": record.name, "msg": msg[:MAX_LOG_CHARS]}
        if isinstance(fields, dict):
            long = any(isinstance(v, str) and len(v) > MAX_LOG_CHARS for v in fields.values())
            item["fields"] = {k: _short(v) for k, v in fields.items()} if long else dict(fields)
        self._items.append(item)

    def after(self, seq: int, limit: int = 500) -> list[dict[str, Any]]:
        return [r for r in self._items if r["seq"] > seq][-limit:]

    @property
    def last(self) -> int:
        return self._seq


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_LOG_CHARS:
        return value[:MAX_LOG_CHARS] + "..."
    return value
