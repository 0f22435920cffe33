"""Streams through StreamRepairer(incremental=True) and the answer a client assembles from its events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from repair import ContentDelta, ReasoningDelta, StreamRepairer, ToolCallDelta, repair_message
from repair.incremental import ToolArgsDelta, ToolCallStart, canonical_arguments
from tests.repair.helpers import assert_stream_matches, chunkings, ids


@dataclass
class Assembled:
    content: str = ""
    reasoning: str = ""
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, arguments]
    order: list[str] = field(default_factory=list)  # "start"/"args"/"whole" as they came

    def add(self, events: list[Any]) -> None:
        for e in events:
            if isinstance(e, ContentDelta):
                self.content += e.text
            elif isinstance(e, ReasoningDelta):
                self.reasoning += e.text
            elif isinstance(e, ToolCallStart):
                assert e.index not in self.calls
                self.calls[e.index] = [e.id, e.name, ""]
                self.order.append("start")
            elif isinstance(e, ToolArgsDelta):
                self.calls[e.index][2] += e.text
                self.order.append("args")
            elif isinstance(e, ToolCallDelta):
                assert e.index not in self.calls
                self.calls[e.index] = [e.id, e.name, e.arguments]
                self.order.append("whole")

    def call_list(self) -> list[tuple[str, str, str]]:
        return [tuple(self.calls[i]) for i in sorted(self.calls)]  # type: ignore[misc]


def stream_incremental(chunks: list[str], tools: Any, **opts: Any) -> tuple[StreamRepairer, Assembled]:
    sr = StreamRepairer(tools, id_factory=ids, incremental=True, **opts)
    got = Assembled()
    for ch in chunks:
        got.add(sr.feed(ch))
    got.add(sr.finish())
    return sr, got


def expected(text: str | None, tools: Any, **opts: Any) -> tuple[Any, list[tuple[str, str, str]]]:
    r = repair_message(text, tools, id_factory=ids, **opts)
    return r, [(c["id"], c["function"]["name"], canonical_arguments(c["function"]["arguments"]))
               for c in r.tool_calls]


def assert_incremental_matches(text: str, tools: Any, seed: int = 0, count: int = 3, **opts: Any) -> None:
    """Unless a call failed after its header (reported), the client's answer is the one-shot answer."""
    r, calls = expected(text, tools, **opts)
    for chunks in chunkings(text, seed, count):
        sr, got = stream_incremental(chunks, tools, **opts)
        if sr.after_header:
            continue
        assert got.content == (r.content or ""), chunks
        assert got.reasoning == (r.reasoning_content or ""), chunks
        assert got.call_list() == calls, chunks
        assert sr.result.errors == r.errors and sr.result.repairs == r.repairs


def assert_sized_stream_matches(text: str, sizes: list[int], tools: Any, choice: str | None = None, *,
                                strict: bool = False) -> None:
    """`text` streamed in pieces of `sizes` (cycled) gives the one-shot answer; a hermes call that went out and then
    failed is reported (`after_header`; with `strict`, none may), and then only checked for inventing nothing: its
    arguments are JSON unless the stream ended inside them."""
    chunks, i, k = [], 0, 0
    while i < len(text):
        chunks.append(text[i:i + sizes[k % len(sizes)]])
        i, k = i + sizes[k % len(sizes)], k + 1
    r, calls = expected(text if chunks else None, tools, tool_choice=choice)
    sr, got = stream_incremental(chunks, tools, tool_choice=choice)
    assert not (strict and sr.after_header), sr.after_header
    if sr.after_header:
        cut = {issue.call_index for issue in sr.after_header if "truncated" in issue.detail}
        for n, c in enumerate(got.call_list()):
            if n in cut:  # the stream ended inside its arguments: they stay as cut
                with pytest.raises(ValueError):
                    json.loads(c[2])
            else:
                assert json.loads(c[2]) is not None
        return
    assert (got.content, got.reasoning, got.call_list()) == (r.content or "", r.reasoning_content or "", calls)


def live(pieces: list[str], tools: Any, **opts: Any) -> tuple[list[Any], list[Any]]:
    """The events of an incremental stream while the pieces are fed, and those of finish()."""
    sr = StreamRepairer(tools, id_factory=ids, incremental=True, **opts)
    fed = [e for p in pieces for e in sr.feed(p)]
    return fed, sr.finish()


def text_of(events: list[Any], kind: type) -> str:
    """The text of the events of one kind (ContentDelta, ReasoningDelta), joined."""
    return "".join(e.text for e in events if isinstance(e, kind))


def assert_every_split_matches(text: str, tools: Any, seed: int, **opts: Any) -> Any:
    """The stream's answer is the one-shot answer (returned) for the text cut in two at every offset, and in the
    helpers' 1-character and random pieces; no call fails after its header."""
    assert_stream_matches(text, tools, seed=seed, **opts)
    assert_incremental_matches(text, tools, seed=seed, **opts)
    r, calls = expected(text, tools, **opts)
    for i in range(1, len(text)):
        sr, got = stream_incremental([text[:i], text[i:]], tools, **opts)
        assert not sr.after_header
        assert (got.content, got.reasoning, got.call_list()) == (r.content or "", r.reasoning_content or "",
                                                                 calls), i
    return r


def assert_plain_splits_match(text: str, tools: Any, **opts: Any) -> Any:
    """The plain (not incremental) stream gives the one-shot answer (returned) for every split of the text in two."""
    r = repair_message(text, tools, id_factory=ids, **opts)
    for i in range(1, len(text)):
        sr = StreamRepairer(tools, id_factory=ids, **opts)
        sr.feed(text[:i])
        sr.feed(text[i:])
        sr.finish()
        assert sr.result == r, i
    return r


def streamed(pieces: list[str], tools: Any, incremental: bool, **opts: Any) -> Any:
    """The stream's answer for the text in `pieces`; no call failed after its header."""
    sr = StreamRepairer(tools, id_factory=ids, incremental=incremental, **opts)
    for p in pieces:
        sr.feed(p)
    sr.finish()
    assert sr.after_header == []
    return sr.result
