"""The router's log lines: JSON (one object per line) or text (`key=value`), neither able to forge a line."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from asyncio import AbstractEventLoop
from collections.abc import Iterable
from typing import Any

from . import jsoncodec
from .redact import scrub_text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; request lines carry their fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        try:
            return jsoncodec.dumps_text(doc)
        except UnicodeEncodeError:
            return json.dumps(doc, default=str)


# control characters, line separators and bidi controls (a right-to-left override shows the rest of a line reversed);
# the console's log view escapes the same ones
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NEEDS_QUOTES = re.compile(r"[\s\"=]")


def _escape(text: str) -> str:
    """`text` on one line: control characters (newlines included) as JSON-style escapes, so a value a client
    chose (a model name) cannot start a forged log line."""
    return _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, str) and (not value or _NEEDS_QUOTES.search(value)):
        return _escape(json.dumps(value, ensure_ascii=False))
    return _escape(text)


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL logger: message key=value ...`, one line per record (plus a traceback when there is one,
    indented); messages, values and tracebacks are escaped, never able to add a record's line."""

    def format(self, record: logging.LogRecord) -> str:
        message = _escape(record.getMessage())
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {message}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            base += " " + " ".join(f"{_escape(str(k))}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            base += "\n" + _indented(self.formatException(record.exc_info))
        return base


def _indented(text: str) -> str:
    """A traceback under its record: every line indented and escaped, so that no line of it (an exception's
    message may quote what a client sent) begins a record of its own or breaks one."""
    return "\n".join("  " + _escape(line) for line in text.split("\n"))


_TEMPLATES: dict[tuple[str, str], dict[str, Any]] = {}


def log_fields(logger: logging.Logger, msg: str, fields: dict[str, object]) -> None:
    """`logger.info(msg, extra={"fields": fields})` for a line logged on every request, made cheaper: no caller
    lookup (no format shows it) and, where the record would carry no thread or process data anyway (as
    `setup_logging` sets it) and the default record factory is in use, the record is a copy of one made once for
    this logger and message with only its times and fields set (the attributes a `LogRecord` built now would
    have, values included). Otherwise the record is made the ordinary way."""
    if logging.logThreads or logging.logProcesses or logging.logMultiprocessing \
            or getattr(logging, "logAsyncioTasks", False) or logging.getLogRecordFactory() is not logging.LogRecord:
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, msg, (), None, extra={"fields": fields}))
        return
    key = (logger.name, msg)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = vars(logger.makeRecord(logger.name, logging.INFO, "", 0, msg, (), None))
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = time.time()
    attrs = record.__dict__
    attrs.update(template)
    attrs["created"], attrs["msecs"] = now, int((now - int(now)) * 1000) + 0.0
    attrs["relativeCreated"], attrs["fields"] = (now - _START) * 1000, fields
    handle(logger, record)


def handle(logger: logging.Logger, record: logging.LogRecord) -> None:
    """`logger.handle(record)` without its layers where nothing on the record's way can tell: no filter on the
    logger or a handler, no handler or logger class that changes how a record is handled. Each handler of the
    logger and of its ancestors (while they propagate) at or below the record's level emits it under its lock,
    as `Logger.callHandlers` and `Handler.handle` do. Anything else, and a record no handler takes, goes to
    `logger.handle`."""
    if logger.disabled or logger.filters or type(logger).handle is not _LOGGER_HANDLE:
        logger.handle(record)
        return
    chain: list[logging.Handler] = []
    node: logging.Logger | None = logger
    while node is not None:
        for h in node.handlers:
            if h.filters or type(h).handle is not _HANDLER_HANDLE:
                logger.handle(record)
                return
            chain.append(h)
        node = node.parent if node.propagate else None
    if not chain:
        logger.handle(record)
        return
    level = record.levelno
    for h in chain:
        if level >= h.level:
            lock = h.lock
            if lock is None:
                h.emit(record)
            else:
                with lock:
                    h.emit(record)


_LOGGER_HANDLE = logging.Logger.handle
_HANDLER_HANDLE = logging.Handler.handle


_START: float = logging._startTime  # type: ignore[attr-defined]  # private: relativeCreated counts from it


MAX_GATHERED = 256  # lines held before they are written even though the loop is still busy


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A `StreamHandler` that, once `gather_on(loop)` was called, holds the lines logged on that loop's thread
    (below WARNING) and writes them in one call when the loop next gets to its callbacks: under load many requests
    end in one pass of the loop, and each line was a write (and flush) of its own. Lines from other threads, and
    warnings and errors, are written at once, after whatever was held (so the order stays). `flush()` and
    `close()` write what is held."""

    def __init__(self) -> None:
        super().__init__()
        self._loop: AbstractEventLoop | None = None
        self._thread = 0
        self._held: list[str] = []
        self.secrets: tuple[str, ...] = ()  # redacted from every line (`keep_out_of_logs`)

    def gather_on(self, loop: AbstractEventLoop | None) -> None:
        """Hold lines logged on `loop`'s thread (the calling one) until its next callbacks; None: stop holding."""
        self.flush()
        self._loop, self._thread = loop, threading.get_ident() if loop is not None else 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self.secrets:  # whatever logged it: a message quoting what an engine or an upstream said
                line = scrub_text(line, self.secrets)
            if self._loop is not None and record.levelno < logging.WARNING and threading.get_ident() == self._thread:
                self._held.append(line)
                if len(self._held) == 1:
                    self._loop.call_soon(self.flush)
                elif len(self._held) >= MAX_GATHERED:
                    self._write()
                return
            self._held.append(line)
            self._write()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            if self._held:
                self._write()
            elif self.stream is not None and hasattr(self.stream, "flush"):
                self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing left to tell it
            self._held.clear()
        finally:
            self.release()

    def _write(self) -> None:
        text = "".join(self._held) if len(self._held) > 1 else self._held[0]
        self._held.clear()
        self.stream.write(text)
        self.stream.flush()


def gather_lines(loop: AbstractEventLoop | None) -> None:
    """Point the root logger's `LineHandler`s at `loop` (see there); None when the loop ends."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LineHandler):
            handler.gather_on(loop)


def keep_out_of_logs(secrets: Iterable[str]) -> None:
    """Redact `secrets` (the config's: `config.model.all_secrets`) from every line the root logger's
    `LineHandler`s write from now on, literal or escaped (a JSON line escapes what it quotes); () stops it."""
    found = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LineHandler):
            handler.secrets = found


def setup_logging(fmt: str = "json", level: str = "info") -> None:
    """One handler on the root logger writing `fmt` ("json" or "text") to stderr at `level`."""
    handler = LineHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # neither format shows a record's thread or process: not looked up for every line (getpid is a system call)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12+: nor its asyncio task
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
