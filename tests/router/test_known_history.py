"""A resent history found by its bytes (`KnownHistory`) gives the body the whole parse gives, or the whole parse:
on an agent's turns, on bodies built to confuse it (nested copies, changed elements, duplicate keys, spacing,
garbage), and with the known tools list replaced in the same parse."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from router import jsoncodec
from router.knownhistory import KnownHistory
from router.toolcache import ToolIndexCache

SYSTEM = {"role": "system", "content": "You are a coding agent. " * 8}
POOL: list[dict[str, Any]] = [
    {"role": "user", "content": "List the files, please. é"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "ls", "arguments": "{\"dir\": \".\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "a.py\nb.py\n\u2028 \"quoted\""},
    {"role": "assistant", "content": "Two files. \U0001f600 n=12345678901234567890123"},
    {"role": "user", "content": [{"type": "text", "text": "and now?", "cache_control": {"type": "ephemeral"}}]},
    {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    {"role": "assistant", "content": "x", "n": -9223372036854775809, "f": 1.5e-7},
]
TOOLS = [{"type": "function", "function": {"name": "ls", "description": "list " * 30, "parameters": {
    "type": "object", "properties": {"dir": {"type": "string"}}}}}]


def _dumps(doc: Any, style: str) -> bytes:
    if style == "compact":
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if style == "spaced":
        return json.dumps(doc).encode()
    return json.dumps(doc, indent=1).encode()


def _whole(raw: bytes) -> Any:
    try:
        return jsoncodec.loads_text(raw)
    except ValueError:
        return None


def _check(history: KnownHistory, cache: ToolIndexCache, raw: bytes) -> dict[str, Any] | None:
    """parse, compared with the whole parse; learns as the router does."""
    body, found = history.parse(raw, cache.known)
    whole = _whole(raw)
    if body is not None:
        assert body == whole and list(body) == list(whole)
        for k in ("messages", "input"):
            if isinstance(body.get(k), list):
                assert [type(v) for v in body[k]] == [type(v) for v in whole[k]]
                assert json.dumps(body[k]) == json.dumps(whole[k])  # the same numbers (no float for an int)
        history.learn(raw, body, found)
    elif isinstance(whole, dict):
        history.learn(raw, whole, None)
    return body


def test_an_agents_turns_are_found_and_grow() -> None:
    history, cache = KnownHistory(), ToolIndexCache()
    messages = [SYSTEM, POOL[0]]
    hits = []
    for turn in range(5):
        for style in ("compact", "spaced"):
            body = {"model": "m", "messages": messages, "tools": TOOLS, "stream": False}
            raw = _dumps(body, style)
            got = _check(history, cache, raw)
            if got is not None:
                cache.get(got["tools"], raw=raw)
            hits.append(got is not None)
        messages = [*messages, POOL[1 + turn % 3], POOL[2 + turn % 3]]
    assert hits[:2] == [False, False] and all(hits[4:])
    raw = _dumps({"model": "m", "messages": [*messages[:-2], POOL[3]], "tools": TOOLS}, "compact")
    found = history.locate(raw)
    assert found is not None and found.count == len(messages) - 2  # the longest known prefix


def test_a_moved_cache_control_costs_one_element() -> None:
    """Claude Code marks the newest user message; the next turn sends it unmarked: every element before it is
    still found."""
    history, cache = KnownHistory(), ToolIndexCache()
    first = {"model": "m", "max_tokens": 5, "messages": [SYSTEM, POOL[0], POOL[3], POOL[4]]}
    _check(history, cache, _dumps(first, "compact"))
    second = {"model": "m", "max_tokens": 5, "messages": [SYSTEM, POOL[0], POOL[3], POOL[5], POOL[3], POOL[4]]}
    raw = _dumps(second, "compact")
    found = history.locate(raw)
    assert found is not None and found.count == 3
    assert _check(history, cache, raw) is not None
    assert history.locate(raw) is not None and history.locate(raw).count == 6  # type: ignore[union-attr]


def test_responses_input_and_a_nested_copy() -> None:
    history, cache = KnownHistory(), ToolIndexCache()
    items = [{"type": "message", "role": "developer", "content": "Rules: " * 30}, POOL[0]]
    raw = _dumps({"model": "m", "instructions": "be brief", "input": items, "store": False}, "compact")
    assert _check(history, cache, raw) is None
    assert _check(history, cache, raw) is not None
    nested = _dumps({"model": "m", "meta": {"input": items}, "input": items}, "compact")
    assert _check(history, cache, nested) is None  # the first copy is nested: the whole parse decides
    other_key = _dumps({"model": "m", "messages": items}, "compact")
    assert history.locate(other_key) is None  # known as `input`, not as `messages`


def test_it_stays_bounded() -> None:
    history, cache = KnownHistory(max_entries=8, max_bytes=64 << 10, max_entry_bytes=32 << 10), ToolIndexCache()
    for i in range(300):
        messages = [{"role": "system", "content": f"conversation {i} " + "s" * (i % 50 + 130)}, POOL[i % 7]]
        _check(history, cache, _dumps({"model": "m", "messages": messages}, "compact"))
        assert len(history._by_head) <= 8 and history.bytes <= 64 << 10
    big = [{"role": "system", "content": "y" * 8000}, POOL[0]]
    _check(history, cache, _dumps({"model": "m", "messages": big}, "compact"))
    assert history.locate(_dumps({"model": "m", "messages": big}, "compact")) is None  # over the entry bound


_element = st.one_of(st.sampled_from(POOL), st.builds(lambda t: {"role": "user", "content": t},
                                                      st.text(max_size=8)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_element, max_size=5), min_size=1, max_size=4),
       st.sampled_from(["compact", "spaced", "indent"]),
       st.sampled_from(["", "garbage", "dup", "nested", "empty", "tools-first"]),
       st.booleans())
def test_found_history_gives_the_whole_parse(turns: list[list[dict[str, Any]]], style: str, twist: str,
                                             with_tools: bool) -> None:
    history, cache = KnownHistory(), ToolIndexCache()
    messages: list[dict[str, Any]] = [SYSTEM]
    for more in turns:
        messages = [*messages, *more]
        body: dict[str, Any] = {"model": "m", "messages": copy.deepcopy(messages)}
        if with_tools:
            body = {"tools": TOOLS, **body} if twist == "tools-first" else {**body, "tools": TOOLS}
        if twist == "nested":
            body = {"meta": {"messages": messages}, **body}
        if twist == "empty":
            body["messages"] = []
        text = _dumps(body, style).decode()
        if twist == "garbage":
            text = text[:-1]
        elif twist == "dup":
            text = text[:-1] + ', "messages": ' + json.dumps(messages[:1]) + "}"
        raw = text.encode()
        got = _check(history, cache, raw)
        if got is not None and with_tools and isinstance(got.get("tools"), list):
            cache.get(got["tools"], raw=raw)
