"""Stream events (from `StreamRepairer` or `StreamValidator`) as OpenAI chunk `delta` objects: the one
conversion the engine worker and the router both use, so the two streams say the same thing the same way.

- Text: a `content` / `reasoning_content` delta; empty text makes none; adjacent deltas of the same key merge.
- A call's header (`ToolCallStart`) or a whole call (`ToolCallDelta`): one `tool_calls` delta carrying index, id,
  type and name, with "" as arguments for a header and the canonical arguments (`canonical_arguments`) for a
  whole call, so a stream's argument pieces and a whole answer are the same string.
- Argument pieces (`ToolArgsDelta`): a `tool_calls` delta with index and the piece; an empty piece makes none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from repair.incremental import ToolArgsDelta, ToolCallStart, canonical_arguments
from repair.types import ContentDelta, ReasoningDelta, ToolCallDelta


def stream_deltas(events: Iterable[object]) -> tuple[list[dict[str, Any]], bool]:
    """(the delta objects, whether any of them opens a tool call)."""
    deltas: list[dict[str, Any]] = []
    calls = False
    last_key = ""  # the key of the last delta when it is a text delta (which the next text may extend)
    for ev in events:
        if isinstance(ev, (ContentDelta, ReasoningDelta)):
            if not ev.text:
                continue
            key = "content" if isinstance(ev, ContentDelta) else "reasoning_content"
            if key == last_key:
                deltas[-1][key] += ev.text
            else:
                deltas.append({key: ev.text})
                last_key = key
            continue
        if isinstance(ev, ToolArgsDelta):
            if ev.text:
                deltas.append({"tool_calls": [{"index": ev.index, "function": {"arguments": ev.text}}]})
                last_key = ""
        elif isinstance(ev, (ToolCallDelta, ToolCallStart)):
            calls = True
            args = canonical_arguments(ev.arguments) if isinstance(ev, ToolCallDelta) else ""
            deltas.append({"tool_calls": [{"index": ev.index, "id": ev.id, "type": "function",
                                           "function": {"name": ev.name, "arguments": args}}]})
            last_key = ""
    return deltas, calls
