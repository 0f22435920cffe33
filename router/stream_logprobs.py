"""The logprobs of a repaired chat stream (a request with `logprobs: true`): each upstream content piece's entries
(`choices[].logprobs.content`) wait for that text to go out, and go with the content chunk that completes it.

The repairer sends prose as it comes, holds text that may begin a call (released later as it came when it was
none), and changes the text where it takes a call or a think block out of it. The entries follow the text that
goes out exactly as the upstream sent it, in order: a token's entry goes with the chunk that sends the last of
its text. From the first content that is not the upstream's next text (what repair changed: a paragraph break
after a call taken out, a think block's answer), the stream carries no more logprobs; the entries of text that
never went out (the markup of a call, whitespace dropped before it) are dropped with it. The refusal's entries
(`logprobs.refusal`) go with the refusal, which goes out as it came. A request without `logprobs` never comes
here: its chunks cost what they did.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from . import jsoncodec
from .chat_types import ChunkPart, StreamChunk

LOGPROBS_PER_CHAR = 4  # bytes of entries' JSON held per character of the text bound (as a Responses stream keeps)
Entry = dict[str, Any]  # one token's logprob entry, as the upstream sent it


@dataclass(slots=True)
class _Unit:
    """Upstream content text and the entries that go out once all of it did: one token's, or, when a piece's
    tokens do not spell its text (a character cut between tokens), the whole piece's."""

    text: str
    entries: list[Entry]
    weight: int = 0  # the bytes of JSON of the entries of its upstream piece, on the piece's last unit


class StreamLogprobs:
    """The entries of one repaired stream's content and refusal, waiting for their text to go out; `max_chars`
    bounds the text that waits, and `LOGPROBS_PER_CHAR` times it the bytes of the entries' JSON that wait (past
    either, the stream carries no more logprobs)."""

    __slots__ = ("_bytes", "_done", "_full", "_matched", "_max_bytes", "_max_chars", "_refusal", "_refusal_bytes",
                 "_size", "_units")

    def __init__(self, max_chars: int) -> None:
        self._units: deque[_Unit] = deque()
        self._matched = 0  # characters of the first unit's text that went out
        self._size = 0  # characters of text the units hold
        self._bytes = 0  # bytes of JSON of the entries the units and the refusal's hold
        self._max_chars = max_chars
        self._max_bytes = LOGPROBS_PER_CHAR * max_chars
        self._done = False  # the content went out changed (or past the bound): no more entries
        self._full = False  # past the bound of entries' bytes: none for the refusal either
        self._refusal: list[Entry] = []
        self._refusal_bytes = 0  # of the bytes held, the refusal's entries'

    def part(self, part: ChunkPart) -> None:
        """An upstream chunk's part, before it goes to the repairer: its content (with its entries, unless it also
        carries reasoning, which they may be of) and its refusal's entries."""
        logprobs = part.logprobs
        if part.content:
            self.fed(part.content, logprobs.get("content") if type(logprobs) is dict and not part.reasoning else None)
        if part.refusal and type(logprobs) is dict and not self._full:
            found = _entries(logprobs.get("refusal"))
            weight = self._weigh(found) if found else 0
            if weight:
                self._refusal += found
                self._refusal_bytes += weight

    def fed(self, text: str, entries: object = None) -> None:
        """Upstream content `text` going to the repairer, with its entries (None: it came with none)."""
        if self._done or not text:
            return
        found = _entries(entries)
        self._size += len(text)
        weight = self._weigh(found) if found else 0
        if self._size > self._max_chars:
            self._stop()
        elif self._done:
            return
        elif found and "".join([e["token"] for e in found]) == text:
            self._units.extend([_Unit(e["token"], [e]) for e in found])
            self._units[-1].weight = weight
        else:
            self._units.append(_Unit(text, found, weight))

    def _weigh(self, found: list[Entry]) -> int:
        """The bytes of JSON of `found`, counted as held; 0 past the bound (or for entries JSON cannot hold), where
        the stream carries no more entries."""
        try:
            weight = len(jsoncodec.dumps(found))
        except ValueError:
            weight = self._max_bytes + 1
        self._bytes += weight
        if self._bytes > self._max_bytes:
            self._full = True
            self._refusal, self._refusal_bytes = [], 0
            self._stop()
            return 0
        return weight

    def sent(self, text: str) -> list[Entry]:
        """The entries that go with content `text` going out: those of the tokens whose text it completes, while the
        content is the upstream's text as it came."""
        if self._done:
            return []
        out: list[Entry] = []
        at, units = 0, self._units
        while at < len(text):
            if not units:
                self._stop()
                return out
            unit = units[0]
            rest = unit.text[self._matched:]
            if len(text) - at < len(rest):  # the text ends inside this unit
                if not rest.startswith(text[at:]):
                    self._stop()
                    return out
                self._matched += len(text) - at
                return out
            if not text.startswith(rest, at):
                self._stop()
                return out
            at += len(rest)
            self._taken(out)
        while units and len(units[0].text) == self._matched:  # tokens of no text, right after the last
            self._taken(out)
        return out

    def _taken(self, out: list[Entry]) -> None:
        unit = self._units.popleft()
        self._size -= len(unit.text)
        self._bytes -= unit.weight
        self._matched = 0
        out += unit.entries

    def _stop(self) -> None:
        self._done = True
        self._units.clear()
        self._size = self._matched = 0
        self._bytes = self._refusal_bytes

    def refusal(self) -> list[Entry]:
        """The refusal's entries so far (they go with the refusal, which goes out whole)."""
        out, self._refusal = self._refusal, []
        self._bytes -= self._refusal_bytes
        self._refusal_bytes = 0
        return out

    def chunks(self, items: list[Any], base: dict[str, Any]) -> list[Any]:
        """One batch of the stream's items with its content and refusal chunks carrying their entries (a chunk
        document under the envelope `base` instead of the `StreamChunk`, when it has some)."""
        for i, item in enumerate(items):
            if type(item) is not StreamChunk:
                continue
            delta = item.delta
            content, refused = delta.get("content"), delta.get("refusal")
            if type(content) is str and content:
                entries = self.sent(content)
                logprobs: dict[str, Any] = {"content": entries, "refusal": None}
            elif type(refused) is str and refused:
                entries = self.refusal()
                logprobs = {"content": None, "refusal": entries}
            else:
                continue
            if entries:
                items[i] = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                                                 "finish_reason": None}]}
        return items


def _entries(value: object) -> list[Entry]:
    """The well-formed entries (a `token` string each) of a logprobs list."""
    if type(value) is not list:
        return []
    return [e for e in value if type(e) is dict and type(e.get("token")) is str]


async def with_logprobs(batches: AsyncGenerator[Any, None], logprobs: StreamLogprobs,
                        base: dict[str, Any]) -> AsyncGenerator[Any, None]:
    """A repaired stream's batches (lists of items; anything else passes as it is) with their entries (see
    `StreamLogprobs.chunks`); `base`: the stream's envelope, as it is when each batch is made."""
    async with aclosing(batches):
        async for batch in batches:
            yield logprobs.chunks(batch, base) if type(batch) is list else batch
