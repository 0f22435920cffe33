"""SSE framing: split a byte stream into events, and rewrite events without re-framing the rest."""

from __future__ import annotations

import json
from collections.abc import Callable


class EventSplitter:
    """Feed raw bytes, get back complete events (each including its trailing blank line)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            events.append(buf[start:end + 2])
            start = end + 2
        self._buf = buf[start:]
        return events

    def rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` payload of one event, or None for comments/keep-alives."""
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(data) if data else None


def encode_data(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class Rewriter:
    """Passes a stream through, event by event (a partial event waits for its end); subclasses change event
    payloads. `done` turns true once the upstream's `data: [DONE]` went by."""

    def __init__(self, on_usage: Callable[[dict], None] | None = None) -> None:
        self._split = EventSplitter()
        self.on_usage = on_usage
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        out = []
        for e in self._split.feed(chunk):
            if b"[DONE]" in e and event_data(e) == b"[DONE]":
                self.done = True
            out.append(self.event(e))
        return b"".join(out)

    def finish(self) -> bytes:
        rest = self._split.rest()
        return self.event(rest + b"\n\n") if rest.strip() else b""

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
