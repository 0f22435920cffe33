"""SSE framing: split a byte stream into events, and rewrite events without re-framing the rest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class UpstreamTooLarge(Exception):
    """An upstream body or event went past its bound."""


# --- bounded reading ---------------------------------------------------------------------------------------------

class EventSplitter:
    """Raw bytes in, complete SSE events out (each with its trailing blank line; lines ended by CRLF or a bare
    CR, which SSE allows as well as LF, are given LF: JSON holds no raw CR). A partial event is kept as a list of
    pieces (no quadratic re-joining) and may not grow past `limit` bytes."""

    __slots__ = ("_cr", "_parts", "_size", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[bytes] = []
        start = 0
        if self._parts and chunk[:1] == b"\n" and self._parts[-1].endswith(b"\n"):
            events.append(b"".join(self._parts) + b"\n")
            self._parts, self._size, start = [], 0, 1
        while True:
            end = chunk.find(b"\n\n", start)
            if end < 0:
                break
            if self._parts:
                events.append(b"".join(self._parts) + chunk[start:end + 2])
                self._parts, self._size = [], 0
            else:
                events.append(chunk[start:end + 2])
            start = end + 2
        if start < len(chunk):
            self._parts.append(chunk[start:] if start else chunk)
            self._size += len(chunk) - start
            if self._size > self.limit:
                self._parts, self._size = [], 0
                raise UpstreamTooLarge(f"an event longer than {self.limit} bytes")
        return events

    def end(self) -> list[bytes]:
        """At the stream's end: the events a CR held back as a chunk's last byte completes (it could have begun a
        CRLF; with nothing after it, it ends a line)."""
        if not self._cr:
            return []
        self._cr = False
        return self.feed(b"\n")

    def rest(self) -> bytes:
        """What is left of an event never completed (after `end()`), and the splitter emptied."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        return rest


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` payload of one event, or None for comments/keep-alives."""
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:  # the usual one-line event
        return event[6:-2]
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(data) if data else None


def error_field(event: bytes) -> bytes | None:
    """The payload of an event that says it is an error by its fields rather than its data: an `error:` field
    (llama-server before ggml-org/llama.cpp#16109 wrote `error: {...}`, then `data: [DONE]`), or the event name
    `error` (its data; b"" when it has none). None for any other event (its data, if any, is read as usual)."""
    if b"error" not in event:
        return None
    named = False
    errors: list[bytes] = []
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"error:"):
            errors.append(line[7:] if line[6:7] == b" " else line[6:])
        elif line.startswith(b"event:") and line[6:].strip() == b"error":
            named = True
        elif line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
    if errors:
        return b"\n".join(errors)
    return b"\n".join(data) if named else None


class Rewriter:
    """Passes a stream through, event by event (a partial event waits for its end); subclasses change event
    payloads. `done` turns true once the upstream's `data: [DONE]` went by."""

    def __init__(self, on_usage: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._split = EventSplitter()
        self.on_usage = on_usage
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        return self._passed(self._split.feed(chunk))

    def _passed(self, events: list[bytes]) -> bytes:
        out = []
        for e in events:
            if b"[DONE]" in e and event_data(e) == b"[DONE]":
                self.done = True
            out.append(self.event(e))
        return b"".join(out)

    def finish(self) -> bytes:
        ended = self._passed(self._split.end())
        rest = self._split.rest()
        return ended + (self.event(rest + b"\n\n") if rest.strip() else b"")

    def event(self, event: bytes) -> bytes:
        return event


class RenameRewriter(Rewriter):
    """Shows the client the model name it asked for instead of the upstream's."""

    def __init__(self, upstream_name: str, requested: str) -> None:
        super().__init__()
        up, req = json.dumps(upstream_name).encode(), json.dumps(requested).encode()
        self._pairs = ((b'"model":' + up, b'"model":' + req), (b'"model": ' + up, b'"model": ' + req))

    def event(self, event: bytes) -> bytes:
        for old, new in self._pairs:
            if old in event:
                event = event.replace(old, new)
        return event
