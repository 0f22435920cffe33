"""Streaming repair with results identical to `repair_message`, however the text is chunked.

Prose is emitted as soon as it is known not to begin a call: the text is held back from the first position
where a candidate (see `repair.markers`) is complete or may still complete, and trailing whitespace is held so
that it can be dropped if markup follows. Once a candidate is complete everything after it is held, and at
finish() the one-shot algorithm runs on the whole text; because that algorithm passes everything before the
first candidate through unchanged (stripping only the whitespace right before removed markup), the text
already emitted is always a prefix of its content, and the rest is emitted then, with the calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from repair.core import check_options, finder_for, repair_message
from repair.index import ToolIndex
from repair.markers import MATCH, NO
from repair.types import ContentDelta, ReasoningDelta, RepairResult, StreamEvent, ToolCallDelta


class StreamRepairer:
    def __init__(self, tools: Any, *, tool_choice: object = None, parallel_tool_calls: bool = True,
                 format: str = "auto", mode: str = "repair", id_factory: Callable[[int], str] | None = None) -> None:
        self._index = ToolIndex.of(tools)
        self._finder = finder_for(self._index)
        self._opts: dict[str, Any] = {"tool_choice": tool_choice, "parallel_tool_calls": parallel_tool_calls,
                                      "format": format, "mode": mode, "id_factory": id_factory}
        check_options(format, mode)
        self._chunks: list[str] = []
        self._fed = False
        self._ws: list[str] = []  # held whitespace (emitted once non-space text follows it)
        self._tail = ""           # text from the first position that may still begin a candidate
        self._ctx = ""            # the character before _tail ("" at the start), for line-start checks
        self._emitted = 0         # characters of the text emitted as content
        self._holding = False
        self._reasoning: list[str] = []
        self._fed_reasoning = False
        self._tool_parts: dict[int, dict[str, Any]] = {}
        self._result: RepairResult | None = None

    # --- input -------------------------------------------------------------------------------------------------

    def feed(self, text: str) -> list[StreamEvent]:
        """An assistant content delta."""
        self._check_open()
        if not text:
            return []
        self._fed = True
        self._chunks.append(text)
        if self._holding:
            return []
        base = self._ctx
        tail = self._tail
        self._tail = ""
        tail += text
        window = base + tail
        status, at = self._finder.scan_stream(window, len(base))
        stop = (at if status != NO else len(window)) - len(base)
        if status == MATCH:
            self._holding = True
        decided = tail[:stop]
        self._tail = tail[stop:]
        body = decided.rstrip()
        if not body:
            if decided:
                self._ws.append(decided)
                self._ctx = decided[-1]
            return []
        out = "".join(self._ws) + body
        self._ws = [decided[len(body):]] if len(body) < len(decided) else []
        self._ctx = decided[-1]
        self._emitted += len(out)
        return [ContentDelta(out)]

    def feed_reasoning(self, text: str) -> list[StreamEvent]:
        """An upstream reasoning_content delta (passed through at once)."""
        self._check_open()
        self._fed_reasoning = True
        if not text:
            return []
        self._reasoning.append(text)
        return [ReasoningDelta(text)]

    def feed_tool_calls(self, deltas: list[dict[str, Any]]) -> list[StreamEvent]:
        """Upstream delta.tool_calls fragments; assembled and repaired at finish()."""
        self._check_open()
        for d in deltas or []:
            if not isinstance(d, dict):
                continue
            idx = d.get("index") if isinstance(d.get("index"), int) else len(self._tool_parts)
            part = self._tool_parts.setdefault(idx, {"id": None, "name": "", "arguments": "", "has_args": False})
            if isinstance(d.get("id"), str) and d["id"] and not part["id"]:
                part["id"] = d["id"]
            fn = d.get("function") if isinstance(d.get("function"), dict) else {}
            if isinstance(fn.get("name"), str):
                part["name"] += fn["name"]
            args = fn.get("arguments")
            if isinstance(args, str):
                part["arguments"] += args
                part["has_args"] = True
            elif isinstance(args, dict):
                part["arguments"] = args
                part["has_args"] = True
        return []

    # --- output ------------------------------------------------------------------------------------------------

    def finish(self) -> list[StreamEvent]:
        """Flush: the rest of the content, reasoning found in the text, and the final calls."""
        self._check_open()
        full = "".join(self._chunks)
        upstream_calls = None
        if self._tool_parts:
            upstream_calls = []
            for idx in sorted(self._tool_parts):
                part = self._tool_parts[idx]
                fn: dict[str, Any] = {"name": part["name"]}
                if part["has_args"]:
                    fn["arguments"] = part["arguments"]
                call: dict[str, Any] = {"type": "function", "function": fn}
                if part["id"]:
                    call["id"] = part["id"]
                upstream_calls.append(call)
        upstream_reasoning = "".join(self._reasoning) if self._fed_reasoning else None
        result = repair_message(full if self._fed else None, self._index, tool_calls=upstream_calls,
                                reasoning_content=upstream_reasoning, **self._opts)
        self._result = result
        events: list[StreamEvent] = []
        content = result.content or ""
        rest = content[self._emitted:]  # content starts with the text already emitted (see the module docstring)
        if rest:
            events.append(ContentDelta(rest))
        reasoning = result.reasoning_content or ""
        sent = len(upstream_reasoning or "")
        if len(reasoning) > sent:
            events.append(ReasoningDelta(reasoning[sent:]))
        for i, c in enumerate(result.tool_calls):
            events.append(ToolCallDelta(i, c["id"], c["function"]["name"], c["function"]["arguments"]))
        return events

    @property
    def result(self) -> RepairResult:
        """The final result; available after finish()."""
        if self._result is None:
            raise RuntimeError("StreamRepairer.result is available after finish()")
        return self._result

    def _check_open(self) -> None:
        if self._result is not None:
            raise RuntimeError("the stream is finished")
