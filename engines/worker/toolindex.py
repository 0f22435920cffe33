"""Tool indexes reused across the requests that declare the same tools list.

An agent resends its tools on every turn, and a tool's JSON-Schema validator costs milliseconds to build (checking
the schema itself), far more than checking one call with it: a streamed constrained call on the tiny models costs
about 11 ms of repair work with a fresh index and 2 ms with a reused one. Keyed by the list's JSON text; bounded in
entries (least recently used out), and a list whose text exceeds `max_chars` gets an index for its request only.
An index is read-only once built (its validators are built on first use), so concurrent requests share it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from repair import ToolIndex

MAX_ENTRIES = 32
MAX_CHARS = 256 << 10


class ToolIndexes:
    """Event-loop side only (not thread-safe)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_chars: int = MAX_CHARS) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[str, ToolIndex] = OrderedDict()
        self.hits = 0

    def of(self, tools: list[Any] | None) -> ToolIndex:
        if not tools:
            return ToolIndex.of(tools)
        try:
            key = json.dumps(tools, separators=(",", ":"))
        except (TypeError, ValueError):
            return ToolIndex.of(tools)
        if len(key) > self.max_chars:
            return ToolIndex.of(tools)
        index = self._entries.get(key)
        if index is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return index
        index = self._entries[key] = ToolIndex.of(tools)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return index

    def __len__(self) -> int:
        return len(self._entries)
