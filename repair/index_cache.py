"""Tool indexes reused across the requests that declare the same tools list (the router's and the engine worker's
one cache).

An agent resends the same 10-60 tools on every turn, and building a tool's JSON-Schema validator costs far more
than checking a call with it. Keyed by a digest of the list's bytes (the caller's canonical encoding); bounded in
entries and in total bytes, least recently used out; a list over `max_entry_bytes` is indexed for its request only,
so a client sending a new large list every time costs itself the compilation and cannot grow the cache or flush it
with one list. An index is read-only once built, so concurrent requests share it. Not thread-safe: one owner
(an event loop) per cache.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from repair.index import ToolIndex

MAX_ENTRIES = 128
MAX_BYTES = 8 << 20  # of tools JSON across all entries (compiled validators take a few times this)
MAX_ENTRY_BYTES = 512 << 10  # a coding agent declares 20-60 KB


class Bounds:
    """The bounds of a cache keyed by tools lists: entries, total bytes, and the largest single entry kept."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self.bytes = 0
        self.hits = 0


class IndexCache(Bounds):
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        super().__init__(max_entries, max_bytes, max_entry_bytes)
        self._entries: OrderedDict[bytes, tuple[ToolIndex, int]] = OrderedDict()
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def index(self, tools: list[Any], data: bytes) -> ToolIndex:
        """The index of `tools`, whose encoding is `data`."""
        if len(data) > self.max_entry_bytes:
            self.misses += 1
            return ToolIndex(tools)
        key = hashlib.blake2b(data, digest_size=16).digest()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]
        self.misses += 1
        index = ToolIndex(tools)
        self._entries[key] = (index, len(data))
        self.bytes += len(data)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, size) = self._entries.popitem(last=False)
            self.bytes -= size
        return index
