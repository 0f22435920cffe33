"""Streamed tool-call deltas are told apart by id where an upstream reuses an index (Ollama, Gemini's OpenAI
endpoint and some gateways give every parallel call index 0, or none): each call the model made comes out whole,
never joined to another (`{"path": "a"}{"path": "b"}`) and lost."""

from __future__ import annotations

import json
from itertools import zip_longest
from typing import Any

import pytest

from repair import StreamRepairer
from repair.slots import CallSlots
from tests.repair.helpers import ids

TOOLS = [{"type": "function", "function": {"name": n, "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}
    for n in ("read_file", "list_dir")]


def _delta(index: int | None, cid: str | None, name: str | None, args: str) -> dict[str, Any]:
    d: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        d["index"] = index
    if cid is not None:
        d["id"] = cid
        d["type"] = "function"
    if name is not None:
        d["function"]["name"] = name
    return d


def _pieces(text: str) -> list[str]:
    return [text[i:i + 5] for i in range(0, len(text), 5)]


def _fragmented(index: int | None, cid: str | None, name: str, args: str) -> list[dict[str, Any]]:
    return [_delta(index, cid, name, ""), *[_delta(index, None, None, p) for p in _pieces(args)]]


A, B = '{"path": "a.py"}', '{"path": "b"}'
SHAPES: dict[str, tuple[list[dict[str, Any]], list[tuple[str, str]]]] = {
    # (the deltas, the calls they are)
    "index 0 reused, each call whole (Ollama)": (
        [_delta(0, "call_a", "read_file", A), _delta(0, "call_b", "list_dir", B)],
        [("read_file", A), ("list_dir", B)]),
    "index 0 reused, each call in pieces": (
        [*_fragmented(0, "call_a", "read_file", A), *_fragmented(0, "call_b", "read_file", B)],
        [("read_file", A), ("read_file", B)]),
    "no index, ids": (
        [_delta(None, "call_a", "read_file", A), _delta(None, "call_b", "read_file", B)],
        [("read_file", A), ("read_file", B)]),
    "no index, one call in pieces": (_fragmented(None, "call_a", "read_file", A), [("read_file", A)]),
    "no index, no ids, two tools": (
        [_delta(None, None, "read_file", A), _delta(None, None, "list_dir", B)],
        [("read_file", A), ("list_dir", B)]),
    "indices interleaved": (
        [_delta(0, "call_a", "read_file", ""), _delta(1, "call_b", "list_dir", ""),
         *[_delta(i, None, None, p) for pair in zip_longest(_pieces(A), _pieces(B)) for i, p in enumerate(pair) if p]],
        [("read_file", A), ("list_dir", B)]),
    "id resent with every piece": (
        [_delta(0, "call_a", "read_file", p) for p in _pieces(A)], [("read_file", A)]),
    "name cut in pieces along with arguments": (
        [_delta(0, "call_a", n, p) for n, p in zip(["read", "_file", "", ""], _pieces(A), strict=False)]
        + [_delta(0, None, None, p) for p in _pieces(A)[4:]],
        [("read_file", A)]),
    "name resent with every piece, no id": (
        [_delta(0, None, "read_file", p) for p in _pieces(A)], [("read_file", A)]),
    "index 1 first": ([_delta(1, "call_a", "read_file", A)], [("read_file", A)]),
}


def _calls(events_and_result: Any) -> list[tuple[str, str]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in events_and_result.tool_calls]


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_call_the_model_made_comes_out_whole(shape: str, incremental: bool) -> None:
    deltas, want = SHAPES[shape]
    for direct in (False, True):  # argument-only pieces through `feed_arguments` as the router's fast path does
        sr = StreamRepairer(TOOLS, id_factory=ids, incremental=incremental)
        for d in deltas:
            if direct and d.keys() == {"index", "function"} and d["function"].keys() == {"arguments"}:
                sr.feed_arguments(d["index"], d["function"]["arguments"])
            else:
                sr.feed_tool_calls([d])
        sr.finish()
        result = sr.result
        assert result is not None and not result.errors
        got = [(n, json.loads(a)) for n, a in _calls(result)]
        assert got == [(n, json.loads(a)) for n, a in want], (shape, direct)


def test_slots_number_calls_in_order_of_first_sight() -> None:
    s = CallSlots()
    assert [s.of_delta(3, "x", "f", False), s.of_arguments(3), s.of_delta(0, "y", "g", True), s.of_arguments(0),
            s.of_delta(3, "z", "f", True), s.of_arguments(3), s.of_arguments(0)] == [0, 0, 1, 1, 2, 2, 1]
    s = CallSlots()  # an id the call lacked, at its own index: the same call's (a late id)
    assert [s.of_delta(0, None, "f", True), s.of_delta(0, "late", None, True)] == [0, 0]
    s = CallSlots()  # without an index it can only be another call's
    assert [s.of_delta(None, None, "f", True), s.of_delta(None, "late", None, True)] == [0, 1]


LATE = {
    "an id after the first arguments": [_delta(0, None, "read_file", '{"path": '), _delta(0, "call_9", None, '"a"}')],
    "an id after all the arguments": [_delta(0, None, "read_file", ""), _delta(0, None, None, '{"path": "a"}'),
                                      _delta(0, "call_9", None, "")],
    "one id for two calls": [_delta(0, "x", "read_file", '{"path": "a"}'),
                             _delta(1, "x", "read_file", '{"path": "b"}')],
}


@pytest.mark.parametrize("shape", list(LATE))
def test_a_call_keeps_the_id_its_header_went_out_with(shape: str) -> None:
    """A call streamed before its id came (or with an id another call had) keeps the id its header went out with:
    the answer's call carried the other id, and the client got the call twice, under each id."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    events = [e for d in LATE[shape] for e in sr.feed_tool_calls([d])] + sr.finish()
    result = sr.result
    assert result is not None and not sr.after_header
    headers = [(type(e).__name__, getattr(e, "id", None)) for e in events if type(e).__name__ != "ToolArgsDelta"]
    sent = [i for kind, i in headers if kind == "ToolCallStart"]
    assert [kind for kind, _ in headers] == ["ToolCallStart"] * len(sent)  # nothing sent whole besides
    assert sent == [c["id"] for c in result.tool_calls] and len(set(sent)) == len(sent)
