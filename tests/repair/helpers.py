"""Shared checks for the repair tests."""

from __future__ import annotations

import functools
import json
import random
from typing import Any

from repair import ContentDelta, ReasoningDelta, RepairResult, StreamRepairer, ToolCallDelta, ToolIndex, repair_message


def run_stream(steps: list[tuple[str, Any]], opts: dict[str, Any], *, direct: bool = True,
               one_shot: bool = False) -> list[Any]:
    """A StreamRepairer over the declared corpus tools fed (kind, payload) steps: "content", "reasoning", "call" (a
    tool-call delta), "args" ((index, piece): `feed_arguments`, or with `direct` false the same delta through
    `feed_tool_calls`); `one_shot`: finished through the one-shot repair over the whole answer (no shortcut).
    Returns the events, the result and the after-header issues."""
    sr = StreamRepairer(corpus_index(), id_factory=ids, **opts)
    out: list[Any] = []
    for kind, payload in steps:
        if kind == "content":
            out += sr.feed(payload)
        elif kind == "reasoning":
            out += sr.feed_reasoning(payload)
        elif kind == "call":
            out += sr.feed_tool_calls([payload])
        elif direct:
            out += sr.feed_arguments(*payload)
        else:
            index, piece = payload
            out += sr.feed_tool_calls([{"index": index, "function": {"arguments": piece}}])
    if one_shot:
        sr._plain = False
    out += sr.finish()
    return [*out, sr.result, sr.after_header]


@functools.cache
def corpus_index() -> ToolIndex:
    """One index of the corpus tools for every stream, as the router shares one per tools list across requests
    (`router.toolcache`): its validators are compiled once, not once per stream."""
    from tests.repair.corpus import TOOLS

    return ToolIndex(TOOLS)


def ids(i: int) -> str:
    return f"call_{i}"


def calls_of(result: RepairResult) -> list[tuple[str, dict[str, Any]]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in result.tool_calls]


def chunkings(text: str, seed: int, count: int = 3) -> list[list[str]]:
    """1-char chunks plus `count` random chunkings (seeded)."""
    out = [list(text)]
    rnd = random.Random(seed)
    for _ in range(count):
        chunks, i = [], 0
        while i < len(text):
            k = rnd.randint(1, 12)
            chunks.append(text[i:i + k])
            i += k
        out.append(chunks)
    return out


def stream(chunks: list[str], tools: Any, **opts: Any) -> tuple[RepairResult, str, str, list[ToolCallDelta]]:
    sr = StreamRepairer(tools, id_factory=ids, **opts)
    events = []
    for ch in chunks:
        events += sr.feed(ch)
    events += sr.finish()
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    return sr.result, content, reasoning, calls


def assert_stream_matches(text: str, tools: Any, seed: int = 0, count: int = 3, **opts: Any) -> RepairResult:
    expected = repair_message(text, tools, id_factory=ids, **opts)
    for chunks in chunkings(text, seed, count):
        result, content, reasoning, calls = stream(chunks, tools, **opts)
        assert content == (expected.content or ""), chunks
        assert reasoning == (expected.reasoning_content or "")
        assert [(c.index, c.id, c.name, c.arguments) for c in calls] == [
            (i, c["id"], c["function"]["name"], c["function"]["arguments"]) for i, c in enumerate(expected.tool_calls)]
        assert result == expected
    return expected
