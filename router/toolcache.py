"""Tool indexes (names resolved, JSON-Schema validators compiled) reused across the requests that declare the same
tools: agents send an identical tools list on every turn, and compiling its validators costs far more than a
request's repair.

The cache itself (a digest of the tools' canonical bytes as key, bounded in entries and bytes) is
`repair.index_cache.IndexCache`, which the engine worker uses too.

`KnownTools` spares a request the parse of a tools list already seen as the same bytes (a coding agent's 20-60 KB
of tools, resent on every turn, were half of its request's parse): the body is parsed with the known list's bytes
cut out, and the list parsed the first time is put back (shared, read-only).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from repair import ToolIndex
from repair.index_cache import MAX_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES, Bounds, IndexCache

from . import jsoncodec


def tools_bytes(tools: list[Any]) -> bytes:
    """A canonical encoding of a parsed tools list (key order kept: a client resends its list as it was)."""
    try:
        return jsoncodec.dumps(tools)
    except UnicodeEncodeError:  # a lone surrogate in a string
        return json.dumps(tools).encode()


class ToolIndexCache(IndexCache):
    """`repair.index_cache.IndexCache` with the router's encoding of a list and its `KnownTools`."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        super().__init__(max_entries, max_bytes, max_entry_bytes)
        self.known = KnownTools(max_entries, max_bytes, max_entry_bytes)

    def get(self, tools: list[Any], encoded: bytes | None = None, raw: bytes | None = None) -> ToolIndex:
        """The index of `tools`; `encoded` is their bytes when the caller has them (saves encoding them here).
        With `raw`, the body `tools` was parsed from, the list is also remembered by its bytes (`KnownTools`)."""
        known = self.known.index_of(tools)
        if known is not None:
            self.hits += 1
            return known
        index = self.index(tools, encoded if encoded is not None else tools_bytes(tools))
        if raw is not None:
            self.known.learn(raw, tools, index)
        return index


# --- tools lists known by their bytes ---------------------------------------------------------------------------

_HEAD = 96  # bytes of a list's start that select the known list to compare
_KEY = b'"tools"'
_WS = (b" ", b"\t", b"\n", b"\r")
WS_CODES = frozenset(b" \t\n\r")
_PROBE = 128  # bytes of the last used list searched for (a long needle: the search skips ahead in big steps)


@dataclass(slots=True)
class _Known:
    raw: bytes  # the list as the client wrote it
    tools: list[Any]  # as parsed then; handed to every later request (never modified by the router)
    index: ToolIndex


class KnownTools(Bounds):
    """Tools lists remembered as the exact bytes a client sent, with their index (bounded in entries and bytes,
    LRU out; a list over `max_entry_bytes` is never remembered).

    `parse(raw)` gives the body parsed with a known list's bytes replaced by a string nobody else can write (a
    per-process nonce), and uses it only when that string came back as the top-level `tools` value: the client's
    bytes then held, at that place, a complete JSON value equal to the known list, and the body means the same
    with the list put back. None otherwise (the caller parses the whole body)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        super().__init__(max_entries, max_bytes, max_entry_bytes)
        self._by_head: OrderedDict[bytes, _Known] = OrderedDict()
        self._by_list: dict[int, _Known] = {}  # id() of a handed-out list (held by its entry: ids stay unique)
        self._mark = "agentgate-known-tools-" + os.urandom(16).hex()
        self._mark_json = b'"' + self._mark.encode() + b'"'

    def __len__(self) -> int:
        return len(self._by_head)

    @staticmethod
    def _starts(raw: bytes) -> Iterator[int]:
        """Where a `"tools": [` value begins (at any depth: the parse tells the top level's), the first 8, found
        one at a time (the first is usually the one: the rest of the body is not searched)."""
        found = 0
        at = raw.find(_KEY)
        while at >= 0 and found < 8:
            i = at + len(_KEY)
            while raw[i:i + 1] in _WS:
                i += 1
            if raw[i:i + 1] == b":":
                i += 1
                while raw[i:i + 1] in _WS:
                    i += 1
                if raw[i:i + 1] == b"[":
                    found += 1
                    yield i
            at = raw.find(_KEY, at + 1)

    @property
    def mark_json(self) -> bytes:
        """The nonce string (JSON) a known list's bytes are replaced with (see `KnownHistory.parse`)."""
        return self._mark_json

    def _candidates(self, raw: bytes) -> Iterator[tuple[int, _Known]]:
        """Where known lists' bytes stand in `raw` as the value of a `"tools"` key, and which list: the last used
        one first, found by its opening bytes (no search for the key), then the places the key search finds, the
        first place passed over. Not parsed: only the parse that puts `mark_json` there tells whether that key is
        the top-level one (see `adopt`)."""
        if not self._by_head:
            return
        latest = self._by_head[next(reversed(self._by_head))]
        tried = self._latest_start(raw, latest)
        if tried >= 0:
            yield tried, latest
        for start in self._starts(raw):
            if start == tried:
                continue
            known = self._by_head.get(raw[start:start + _HEAD])
            if known is not None and raw.startswith(known.raw, start):
                yield start, known

    def locate(self, raw: bytes) -> tuple[int, _Known] | None:
        """The first of `_candidates`."""
        return next(self._candidates(raw), None)

    def adopt(self, body: dict[str, Any], known: _Known) -> bool:
        """`known`'s list put in `body` (parsed with `mark_json` where its bytes stood) when the mark came back as
        the top-level `tools`."""
        if body.get("tools") != self._mark:
            return False
        body["tools"] = known.tools
        self._by_head.move_to_end(known.raw[:_HEAD])
        self.hits += 1
        return True

    def parse(self, raw: bytes) -> dict[str, Any] | None:
        for tries, (start, known) in enumerate(self._candidates(raw)):  # two parses at most
            body = self._parsed(raw, start, known)
            if body is not None or tries == 1:
                return body
        return None

    @staticmethod
    def _latest_start(raw: bytes, known: _Known) -> int:
        """Where `known`'s bytes first appear in `raw` as the value of a `"tools"` key (-1: not so). The search
        is for the list's first `_PROBE` bytes, which the standard library's search skips through far faster
        than a search for the short key (an agent's messages come before its tools)."""
        start = raw.find(known.raw[:_PROBE])
        if start < 0 or not raw.startswith(known.raw, start):
            return -1
        end = name_end(raw, start)
        return start if end >= 0 and raw.endswith(_KEY, 0, end) else -1

    def _parsed(self, raw: bytes, start: int, known: _Known) -> dict[str, Any] | None:
        """The body `raw` holding `known`'s bytes at `start`, parsed without them (see the class), or None."""
        view = memoryview(raw)  # the body around the list, copied once (slices of bytes would copy it twice)
        rest = b"".join((view[:start], self._mark_json, view[start + len(known.raw):]))
        try:
            body = jsoncodec.loads_text(rest)
        except (ValueError, RecursionError):  # the caller parses the whole body and says what is wrong
            return None
        if not isinstance(body, dict) or not self.adopt(body, known):
            return None
        return body

    def holds(self, tools: object) -> bool:
        """Whether `tools` is a list handed out by `parse` (it passed the request checks when it was learned)."""
        known = self._by_list.get(id(tools))
        return known is not None and known.tools is tools

    def index_of(self, tools: list[Any]) -> ToolIndex | None:
        known = self._by_list.get(id(tools))
        return known.index if known is not None and known.tools is tools else None

    def learn(self, raw: bytes, tools: list[Any], index: ToolIndex) -> None:
        """Remember `tools`, the top-level list of the body `raw` (parsed whole), when its bytes are exact JSON
        (no surrogate escapes, no integer a double cannot hold)."""
        for start in self._starts(raw):
            if raw[start:start + _HEAD] in self._by_head:
                continue
            try:
                text = raw[start:start + self.max_entry_bytes + 1].decode()
            except UnicodeDecodeError as exc:  # cut inside a character: what came before it is enough
                text = raw[start:start + exc.start].decode()
            try:
                value, end = _DECODER.raw_decode(text)
            except (ValueError, RecursionError):
                continue
            span = text[:end].encode()
            if value != tools or len(span) < _HEAD or jsoncodec.has_surrogate_escape(span) or \
                    jsoncodec.has_long_int(span):
                continue
            known = self._by_head[span[:_HEAD]] = _Known(span, tools, index)
            self._by_list[id(tools)] = known
            self.bytes += len(span)
            while len(self._by_head) > self.max_entries or self.bytes > self.max_bytes:
                _, old = self._by_head.popitem(last=False)
                self._by_list.pop(id(old.tools), None)
                self.bytes -= len(old.raw)
            return


_DECODER = json.JSONDecoder()


def name_end(raw: bytes, at: int) -> int:
    """For a value that begins at `at` in JSON text `raw`: where the member name it is the value of must end (a
    colon before the value, whitespace allowed around it), or -1 when no colon stands there."""
    at = ws_before(raw, at)
    if raw[at - 1:at] != b":":
        return -1
    return ws_before(raw, at - 1)


def ws_before(raw: bytes, at: int) -> int:
    """Where the JSON whitespace that ends at `at` in `raw` begins (`at` when there is none)."""
    while at > 0 and raw[at - 1] in WS_CODES:
        at -= 1
    return at
