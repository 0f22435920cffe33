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
    # poolsideai/pool#9: one id on a call's first fragment, another on the rest
    "id changing after the header": (
        [_delta(0, "call_a", "read_file", ""), *[_delta(0, "call_x", None, p) for p in _pieces(A)]],
        [("read_file", A)]),
    "a new id with every piece": (
        [_delta(0, f"call_{i}", "read_file" if i == 0 else None, p) for i, p in enumerate(["", *_pieces(A)])],
        [("read_file", A)]),
    "a new id and the name with every piece": (
        [_delta(0, f"call_{i}", "read_file", p) for i, p in enumerate(["", *_pieces(A)])], [("read_file", A)]),
    "no index, no ids, one tool twice": (
        [_delta(None, None, "read_file", A), _delta(None, None, "read_file", B)], [("read_file", A), ("read_file", B)]),
    "no index, no ids, the same call twice": (
        [_delta(None, None, "read_file", A), _delta(None, None, "read_file", A)], [("read_file", A), ("read_file", A)]),
    "no index, a new id with every piece": (
        [_delta(None, f"call_{i}", "read_file" if i == 0 else None, p) for i, p in enumerate(["", *_pieces(A)])],
        [("read_file", A)]),
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
    s = CallSlots()  # an id alone never starts a call, with an index or without
    assert [s.of_delta(None, None, "f", True), s.of_delta(None, "late", None, True),
            s.of_delta(0, "a", "f", True), s.of_delta(0, "b", None, True)] == [0, 0, 1, 1]
    s = CallSlots()  # this tool's name again with another id: another call once the arguments are whole
    assert [s.of_delta(0, "a", "f", True), s.of_delta(0, "b", "f", True, lambda _: False),
            s.of_delta(0, "c", "f", True, lambda _: True), s.of_delta(0, "d", "g", False)] == [0, 0, 1, 2]


LATE = {
    "an id after the first arguments": [_delta(0, None, "read_file", '{"path": '), _delta(0, "call_9", None, '"a"}')],
    "an id after all the arguments": [_delta(0, None, "read_file", ""), _delta(0, None, None, '{"path": "a"}'),
                                      _delta(0, "call_9", None, "")],
    "a later call started first": [_delta(0, None, "read", '{"path": "a"}'), _delta(0, None, "_file", ""),
                                   _delta(1, "up_1", "read_file", '{"path": "b"}')],
    "one id for two calls": [_delta(0, "x", "read_file", '{"path": "a"}'),
                             _delta(1, "x", "read_file", '{"path": "b"}')],
}


@pytest.mark.parametrize("shape", list(LATE))
def test_a_call_keeps_the_id_its_header_went_out_with(shape: str) -> None:
    """A call streamed before its id came (or with an id another call had) keeps the id its header went out with:
    the answer's call carried the other id, and the client got the call twice, under each id. A call that started
    before an earlier one (whose name was still coming) is matched to the answer's call by id, not by place: the
    earlier call took its id, and its arguments went out twice while the earlier call's never did."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    events = [e for d in LATE[shape] for e in sr.feed_tool_calls([d])] + sr.finish()
    result = sr.result
    assert result is not None and not sr.after_header
    sent: dict[int, tuple[str, str]] = {}  # what the client assembles: index -> (id, arguments)
    for e in events:
        kind = type(e).__name__
        if kind == "ToolCallStart":
            sent[e.index] = (e.id, "")
        elif kind == "ToolArgsDelta":
            sent[e.index] = (sent[e.index][0], sent[e.index][1] + e.text)
        elif kind == "ToolCallDelta":  # a call that did not start: sent whole at the end
            sent[e.index] = (e.id, e.arguments)
    ids_sent = [i for i, _ in sent.values()]
    assert len(set(ids_sent)) == len(ids_sent)
    assert {i: json.loads(a) for i, a in sent.values()} == {
        c["id"]: json.loads(c["function"]["arguments"]) for c in result.tool_calls}


@pytest.mark.parametrize("incremental", [True, False])
def test_a_later_delta_finds_the_call_it_belongs_to(incremental: bool) -> None:
    """`call_at` names the call a later delta at an index (or without one) belongs to, with the id and place its
    header went out with (a Gemini 3 signature that comes alone after the header goes on that call)."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=incremental)
    assert sr.call_at(0) is None and sr.call_at(None) is None
    sr.feed_tool_calls([_delta(0, "up_1", "read_file", '{"path": "a"}')])
    assert sr.call_at(0) == ((0, "up_1") if incremental else (None, "up_1"))
    sr.feed_tool_calls([_delta(0, "up_2", "read_file", '{"path": "b"}')])  # index 0 again: another call
    assert sr.call_at(0) == ((1, "up_2") if incremental else (None, "up_2"))
    assert sr.call_at(5) is None
    sr.feed_tool_calls([_delta(None, None, "list_dir", '{"path": "c"}')])  # no index, no id: the last call
    assert sr.call_at(None) == ((2, ids(2)) if incremental else (None, ""))


def test_a_name_that_never_ends_is_held_no_longer_than_the_bound() -> None:
    """An upstream sending a call's name in pieces that never end: what the stream holds of it stops growing (it
    grew by every piece), and the call names no tool."""
    sr = StreamRepairer(TOOLS, id_factory=ids)
    sr.feed_tool_calls([_delta(0, "call_1", "read_", "")])
    for i in range(20_000):
        sr.feed_tool_calls([_delta(0, None, f"x{i}", "")])
    held = [p.name for p in sr._tool_parts.values()]
    sr.finish()
    result = sr.result
    assert result is not None and not result.tool_calls
    assert held and all(len(n) <= 2048 for n in held)  # (grew to 108,890 characters)
