"""Tool indexes reused across the requests that declare the same tools list: `repair.index_cache.IndexCache`
(the router's cache too), keyed by the list's compact JSON text.

An agent resends its tools on every turn, and a tool's JSON-Schema validator costs milliseconds to build (checking
the schema itself), far more than checking one call with it: a streamed constrained call on the tiny models costs
about 11 ms of repair work with a fresh index and 2 ms with a reused one.
"""

from __future__ import annotations

import json
from typing import Any

from repair import ToolIndex
from repair.index_cache import IndexCache

MAX_ENTRIES = 32
MAX_CHARS = 256 << 10


class ToolIndexes(IndexCache):
    """Event-loop side only (not thread-safe). A list whose JSON text exceeds `max_chars` (or is no JSON text)
    gets an index for its request only."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_chars: int = MAX_CHARS) -> None:
        super().__init__(max_entries, max_bytes=max_entries * max_chars, max_entry_bytes=max_chars)

    def of(self, tools: list[Any] | None) -> ToolIndex:
        if not tools:
            return ToolIndex.of(tools)
        try:
            data = json.dumps(tools, separators=(",", ":")).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            return ToolIndex.of(tools)
        return self.index(tools, data)
