"""A client's resent history known by its bytes: an agent sends its whole conversation again on every turn (the
same bytes, with the new turn's messages after them), and parsing it again was the largest part of reading such a
request. `KnownHistory` remembers, for the last conversations, the bytes of the top-level `messages` (Responses:
`input`) elements as the client wrote them, where each element ends, and the parsed elements.

`parse(raw, tools)` finds the longest run of known elements at the start of the body's array, replaces those bytes
with a string nobody else can write (a per-process nonce), and the known tools list's bytes with its own nonce
(`KnownTools`), parses what is left once, and uses the result only when each nonce came back where it stands for
(the first element of the top-level array; the top-level `tools`): the client's bytes then held there complete JSON
values equal to the known ones (a sequence of whole values can stand where one stood), and the body means the same
with them put back. Otherwise the caller parses the whole body. The elements handed out are shared by every request
that sends their bytes: nothing may modify them (the router builds new messages wherever it changes a conversation).

`learn(raw, body, found)` extends what is known with the elements after the known ones, each checked against the
client's bytes by encoding it again (compact, as Node and Rust clients write JSON, or with the standard library's
spaces, as Python clients do): an element spelled otherwise ends what is learned. Bounded in entries and bytes,
least recently used out.

`prefix(items)` tells which of a body's first elements are a known run's own (the same objects), with what the
routes worked out about them (`Facts`: how many passed the chat route's message check, the tool-call ids they
hold), so that a resent history is not read again for those either.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from repair.index_cache import Bounds

from . import jsoncodec
from .toolcache import WS_CODES, KnownTools, name_end, ws_before

_HEAD = 128  # a run's first bytes: what selects it, and what is searched for (a long needle: the search skips ahead)
_PROBES = 4  # the most recently used first elements searched for
_KEYS = (("messages", b'"messages"'), ("input", b'"input"'))
_PER_HEAD = 4  # runs kept for one first element (conversations sharing a system prompt)
MAX_ENTRIES = 256
_WEIGHT = 8  # a run counts eight times its bytes (its bytes and its parsed elements)
MAX_BYTES = 128 << 20
MIN_ELEMENTS = 2


@dataclass(slots=True, eq=False)
class Facts:
    """What the routes worked out about a run's first elements, each true of those elements alone (they are never
    modified): the first `checked` passed the chat route's message check; the first `ids_count` hold the tool-call
    ids `ids` (see `chat_types.HistoryIds`)."""

    checked: int = 0
    ids_count: int = 0
    ids: frozenset[str] = frozenset()

    def of_first(self, count: int) -> Facts:
        """The facts that hold of the first `count` elements."""
        keep_ids = self.ids_count <= count
        return Facts(min(self.checked, count), self.ids_count if keep_ids else 0, self.ids if keep_ids else frozenset())


@dataclass(slots=True, eq=False)  # compared by identity (`in`, `remove`): never element by element
class _Run:
    data: bytes  # the elements as the client wrote them, from the first one's first byte to the last one's last
    ends: list[int]  # ends[i]: where element i ends in `data`
    values: list[Any]  # the parsed elements (shared, read-only)
    key: str  # "messages" or "input"
    spaced: bool  # written with the standard library's separators (", ", ": ")
    facts: Facts = field(default_factory=Facts)


@dataclass(slots=True)
class Prefix:
    """A body's array whose first `count` elements are `values`' own (the same objects), which `facts` are of."""

    values: list[Any]
    count: int
    facts: Facts


@dataclass(slots=True)
class Found:
    """Known elements at the start of a body's array: `count` of `run`'s, from `start` to `end` in the body."""

    start: int
    end: int
    count: int
    run: _Run


def _skip_ws(raw: bytes, at: int) -> int:
    n = len(raw)
    while at < n and raw[at] in WS_CODES:
        at += 1
    return at


def _array_head(raw: bytes, at: int) -> str | None:
    """The name of the array whose first element begins at `at` (`"messages": [` or `"input": [` before it, with
    any whitespace), or None."""
    at = ws_before(raw, at)
    if raw[at - 1:at] != b"[":
        return None
    end = name_end(raw, at - 1)
    if end < 0:
        return None
    for name, key in _KEYS:
        if raw.endswith(key, 0, end):
            return name
    return None


def _agreed(raw: bytes, at: int, data: bytes) -> int:
    """How many of `data`'s first bytes `raw` holds from `at` on."""
    if raw.startswith(data, at):
        return len(data)
    lo, hi = 0, min(len(data), len(raw) - at)
    while lo < hi:  # raw[at:at+lo] == data[:lo]; a mismatch within [lo, hi]: halved each step (copies add up to O(n))
        mid = (lo + hi + 1) // 2
        if raw[at + lo:at + mid] == data[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _encoded(value: Any, spaced: bool) -> bytes | None:
    try:
        return json.dumps(value).encode() if spaced else orjson.dumps(value)
    except (TypeError, ValueError, UnicodeEncodeError):
        return None


class KnownHistory(Bounds):
    """The last conversations' messages known by their bytes (see the module)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_BYTES // 8) -> None:
        super().__init__(max_entries, max_bytes, max_entry_bytes)
        self._by_head: OrderedDict[bytes, list[_Run]] = OrderedDict()
        # id() of a run's first element (held by the run: ids stay unique) -> the runs that begin with it (several:
        # conversations sharing a system prompt, parsed once)
        self._by_first: dict[int, list[_Run]] = {}
        self._mark = "agentgate-known-history-" + os.urandom(16).hex()
        self._mark_json = b'"' + self._mark.encode() + b'"'

    def __len__(self) -> int:
        return sum(len(runs) for runs in self._by_head.values())

    def locate(self, raw: bytes) -> Found | None:
        """The longest run of known elements at the start of the body's `messages` (or `input`) array, looked for
        by the first bytes of the most recently used runs."""
        for tried, head in enumerate(reversed(self._by_head)):
            if tried == _PROBES:
                return None
            start = raw.find(head)
            if start < 0:
                continue
            name = _array_head(raw, start)
            best: Found | None = None
            for run in self._by_head[head]:
                if run.key != name:
                    continue
                count = bisect.bisect_right(run.ends, _agreed(raw, start, run.data))  # the elements that agreed
                if count and (best is None or run.ends[count - 1] > best.end - start):
                    best = Found(start, start + run.ends[count - 1], count, run)
            if best is not None:
                return best
        return None

    def prefix(self, items: object) -> Prefix | None:
        """How many of `items`' first elements are a known run's own (handed out by `parse`), with its facts;
        None when the first is not."""
        if type(items) is not list or not items:
            return None
        best: Prefix | None = None
        for run in self._by_first.get(id(items[0]), ()):
            count = 0
            for mine, theirs in zip(run.values, items, strict=False):
                if mine is not theirs:
                    break
                count += 1
            if count and (best is None or count > best.count):
                best = Prefix(run.values, count, run.facts)
        return best

    def _drop(self, run: _Run) -> None:
        self.bytes -= len(run.data) * _WEIGHT
        same = self._by_first.get(id(run.values[0]))
        if same is not None and run in same:
            same.remove(run)
            if not same:
                del self._by_first[id(run.values[0])]

    def parse(self, raw: bytes, tools: KnownTools) -> tuple[dict[str, Any] | None, Found | None]:
        """The body parsed with its known elements (and its known tools list) not parsed again, and what was found;
        (None, None) when nothing known stands in it as it must (the caller parses the whole body)."""
        found = self.locate(raw)
        if found is None:
            return tools.parse(raw), None
        listed = tools.locate(raw)
        cuts: list[tuple[int, int, bytes]] = [(found.start, found.end, self._mark_json)]
        if listed is not None:
            start, known = listed
            end = start + len(known.raw)
            if end <= found.start or start >= found.end:
                cuts.append((start, end, tools.mark_json))
            else:
                listed = None
        cuts.sort()
        view = memoryview(raw)
        parts: list[bytes | memoryview] = []
        at = 0
        for start, end, mark in cuts:
            parts += (view[at:start], mark)
            at = end
        parts.append(view[at:])
        try:
            body = jsoncodec.loads_text(b"".join(parts))
        except (ValueError, RecursionError):
            return None, None
        if not isinstance(body, dict):
            return None, None
        key = found.run.key
        items = body.get(key)
        if type(items) is not list or not items or items[0] != self._mark:
            return None, None
        if listed is not None and not tools.adopt(body, listed[1]):
            return None, None
        body[key] = [*found.run.values[:found.count], *items[1:]]
        self._by_head.move_to_end(found.run.data[:_HEAD])
        self.hits += 1
        return body, found

    def learn(self, raw: bytes, body: dict[str, Any], found: Found | None) -> None:
        """What `body` (parsed from `raw`, `found` in it) adds to the known runs: its array's elements after the
        known ones, as far as each is spelled as encoding it again spells it."""
        key, items = _array_of(body)
        if items is None or len(items) < MIN_ELEMENTS:
            return
        if found is not None and found.run.key == key:
            if found.count == len(items):
                return  # nothing new
            start, pos, ends, spaced = found.start, found.end, found.run.ends[:found.count], found.run.spaced
        else:
            start, spaced = -1, False
            for spaced in (False, True):
                first = _encoded(items[0], spaced)
                if first is None or len(first) < _HEAD:
                    return
                start = raw.find(first[:_HEAD])
                if start >= 0 and _array_head(raw, start) == key and raw.startswith(first, start):
                    break
                start = -1
            if start < 0:
                return
            pos, ends = start, []
        for i in range(len(ends), len(items)):
            at = pos
            if i:
                at = _skip_ws(raw, at)
                if raw[at:at + 1] != b",":
                    break
                at = _skip_ws(raw, at + 1)
            enc = _encoded(items[i], spaced)
            if enc is None or not raw.startswith(enc, at):
                break
            pos = at + len(enc)
            ends.append(pos - start)
        if len(ends) < MIN_ELEMENTS or (found is not None and len(ends) <= found.count):
            return
        size = ends[-1] * _WEIGHT
        if size > self.max_entry_bytes:
            return
        # the first found.count elements are found.run's own (see `parse`): what is known of them stays known
        facts = found.run.facts.of_first(found.count) if found is not None and found.run.key == key else Facts()
        run = _Run(raw[start:start + ends[-1]], ends, items[:len(ends)], key, spaced, facts)
        head = run.data[:_HEAD]
        runs = self._by_head.pop(head, [])
        if found is not None and found.run in runs and found.count >= len(found.run.ends) - 1:
            # the same conversation, longer now (its last known message may differ: a client moving its cache mark
            # to the newest message rewrites the one before); another that only shares its start keeps its own
            runs.remove(found.run)
            self._drop(found.run)
        runs.insert(0, run)
        self.bytes += size
        self._by_first.setdefault(id(run.values[0]), []).append(run)
        while len(runs) > _PER_HEAD:
            self._drop(runs.pop())
        self._by_head[head] = runs
        while (len(self._by_head) > self.max_entries or self.bytes > self.max_bytes) and self._by_head:
            _, old = self._by_head.popitem(last=False)
            for r in old:
                self._drop(r)


def _array_of(body: dict[str, Any]) -> tuple[str, list[Any] | None]:
    for key, _ in _KEYS:
        value = body.get(key)
        if type(value) is list:
            return key, value
    return "", None
