"""Tool indexes (names resolved, JSON-Schema validators compiled) reused across the requests that declare the same
tools: agents send an identical tools list on every turn, and compiling its validators costs far more than a
request's repair.

Keyed by a digest of the tools' canonical bytes; bounded in entries and in total bytes (LRU out), and a list larger
than `max_entry_bytes` is indexed for its request only, so a client sending a new large list every time costs
itself the compilation and cannot grow the router or flush the cache with one list.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from repair import ToolIndex

from . import jsoncodec

MAX_ENTRIES = 128
MAX_BYTES = 8 << 20  # of tools JSON across all entries (compiled validators take a few times this)
MAX_ENTRY_BYTES = 512 << 10  # a coding agent declares 20-60 KB


@dataclass(slots=True)
class _Entry:
    index: ToolIndex
    size: int


def tools_bytes(tools: list[Any]) -> bytes:
    """A canonical encoding of a parsed tools list (key order kept: a client resends its list as it was)."""
    try:
        return jsoncodec.dumps(tools)
    except UnicodeEncodeError:  # a lone surrogate in a string
        return json.dumps(tools).encode()


class ToolIndexCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tools: list[Any], encoded: bytes | None = None) -> ToolIndex:
        """The index of `tools`; `encoded` is their bytes when the caller has them (saves encoding them here)."""
        data = encoded if encoded is not None else tools_bytes(tools)
        if len(data) > self.max_entry_bytes:
            self.misses += 1
            return ToolIndex(tools)
        key = hashlib.blake2b(data, digest_size=16).digest()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.index
        self.misses += 1
        index = ToolIndex(tools)
        self._entries[key] = _Entry(index, len(data))
        self.bytes += len(data)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.size
        return index
