"""Unquoted JSON values: json-repair reads `2024 election results` as the number 2024 and drops the rest, or
splits `10:00, 11:00 tomorrow` into a key the model never wrote. Its output is taken only when every word the
model wrote outside strings survives in it and every number it holds is one the model wrote; otherwise the call
fails (invalid_json) and its text stays."""

from __future__ import annotations

from typing import Any

import pytest

from repair import StreamRepairer, ToolCallDelta, repair_message
from repair.incremental import LIT, JsonBroken, JsonEvents, ToolArgsDelta, ToolCallStart
from repair.salvage import Decoded, Failed, decode_at
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import stream_incremental


def _tools(prop: str) -> list[dict]:
    return [{"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {prop: {"type": "string"}}, "required": [prop]}}}]


@pytest.mark.parametrize(("prop", "text"), [
    ("query", '<tool_call>{"name": "search", "arguments": {"query": 2024 election results}}</tool_call>'),
    ("time", '[TOOL_CALLS]search[ARGS]{"time": 10:30 tomorrow}'),
    ("query", "<|tool_call>call:search{query:meet at 10:00, 11:00 tomorrow}<tool_call|>"),
])
def test_unquoted_text_is_never_cut_or_split(prop: str, text: str) -> None:
    r = repair_message(text, _tools(prop), id_factory=ids)
    assert r.tool_calls == []
    assert [e.kind for e in r.errors] == ["invalid_json"]
    assert r.content == text
    assert_stream_matches(text, _tools(prop))


def test_unquoted_words_kept_whole_still_pass() -> None:
    text = '<tool_call>{"name": "search", "arguments": {"query": meet at 10}}</tool_call>'
    r = repair_message(text, _tools("query"), id_factory=ids)
    assert calls_of(r) == [("search", {"query": "meet at 10"})]


@pytest.mark.parametrize("src", ['{"a": 2024 election}', '{"t": 10:30 tomorrow}', '{q:a 10:00, 11:00 b}'])
def test_decode_refuses_dropped_words(src: str) -> None:
    assert isinstance(decode_at(src, 0), Failed)


def test_decode_keeps_numbers_the_model_wrote() -> None:
    got = decode_at('{"a": 1.50, "b": [1, 2,] "c": 3}', 0)
    assert isinstance(got, Decoded) and got.value == {"a": 1.5, "b": [1, 2], "c": 3}


SEARCH_CONTEXT = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {
    "query": {"type": "string"}, "context": {"type": "string"}}, "required": ["query"]}}}]


@pytest.mark.parametrize("args", [
    '{"query": 2024 best laptops for students, "context": "the user wants the best laptops for students"}',
    '{"context": "the best laptops for students", "query": 2024 best laptops for students}',
    '{"query": 2024 best laptops, "context": "2024 best laptops"}',
])
def test_cut_words_found_in_another_member_do_not_count(args: str) -> None:
    text = '<tool_call>{"name": "search", "arguments": ' + args + "}</tool_call>"
    r = repair_message(text, SEARCH_CONTEXT, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["invalid_json"] and r.content == text
    assert_stream_matches(text, SEARCH_CONTEXT)


@pytest.mark.parametrize("src", ['{"a": {"q": 2024 best laptops}, "b": "best laptops"}',
                                 '{"a": 2024 best laptops, "b": ["best laptops"]}'])
def test_decode_checks_each_member_s_words_in_that_member(src: str) -> None:
    assert isinstance(decode_at(src, 0), Failed)


def test_unquoted_words_kept_whole_beside_another_member_still_pass() -> None:
    text = ('<tool_call>{"name": "search", "arguments": {"query": meet at 10, "context": "meet at 10 it is"}}'
            "</tool_call>")
    r = repair_message(text, SEARCH_CONTEXT, id_factory=ids)
    assert calls_of(r) == [("search", {"query": "meet at 10", "context": "meet at 10 it is"})]


_SEARCH = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {
    "query": {"type": "string"}, "n": {"type": "integer"}, "exact": {"type": "boolean"}}, "required": ["query"]}}}]


def _two_cuts(text: str, span: int = 16) -> list[list[str]]:
    """Every way to cut `text` in two pieces, or in three with a middle one of up to `span` characters, and one
    character a piece."""
    out = [[text], list(text)]
    for i in range(1, len(text)):
        out.append([text[:i], text[i:]])
        out += [[text[:i], text[i:j], text[j:]] for j in range(i + 1, min(i + span, len(text)))]
    return out


@pytest.mark.parametrize("args", [
    '{"query": 2024 election results}',
    '{"query": 12 angry men, "n": 1}',
    '{"n": 10:30 tomorrow, "query": "x"}',
    '{"exact": true story, "query": "x"}',
])
def test_a_stream_starts_no_call_whose_first_value_is_unquoted_text(args: str) -> None:
    """However the upstream cuts it, the stream gives what the one-shot answer gives: no call (a number followed by
    more words is not a whole number), the text kept; never a call with the value cut to 2024, or with {}."""
    text = 'Searching.\n<tool_call>{"name": "search", "arguments": ' + args + "}</tool_call>"
    r = repair_message(text, _SEARCH, id_factory=ids)
    assert r.tool_calls == [] and r.content == text and [e.kind for e in r.errors] == ["invalid_json"]
    for chunks in _two_cuts(text):
        sr, got = stream_incremental(chunks, _SEARCH)
        assert got.calls == {} and got.content == text and not sr.after_header, chunks
        assert sr.result.errors == r.errors


def test_json_events_give_no_number_that_more_words_follow() -> None:
    for src in ('{"a": 2024 election}', '{"a": 2024election}', '[1 2]', '{"a": true story}', '{"a": nullx}'):
        for chunks in _two_cuts(src):
            events = JsonEvents()
            lits: list[tuple[Any, ...]] = []
            with pytest.raises(JsonBroken):
                for piece in chunks:
                    lits += [e for e in events.feed(piece) if e[0] == LIT]
            assert lits == [], chunks
    events = JsonEvents()
    got = [e for piece in ('{"a": 5 ', " ,", ' "b": [true ', "]}") for e in events.feed(piece)]
    assert [e[1] for e in got if e[0] == LIT] == [5, True] and events.done


def test_a_call_whose_first_value_is_whole_still_starts_before_its_end() -> None:
    text = '<tool_call>{"name": "search", "arguments": {"n": 3, "query": "long text'
    sr, got = stream_incremental([text[:60], text[60:]], _SEARCH)
    assert sr is not None and got.calls == {0: ["call_0", "search", '{"n": 3, "query": "long text']}


@pytest.mark.parametrize("args", ['{"query": 2024 election results}', '{"n": 10:30 tomorrow, "query": "x"}'])
def test_an_upstream_call_with_unquoted_text_starts_no_call_in_a_stream(args: str) -> None:
    head = {"index": 0, "id": "up_1", "type": "function", "function": {"name": "search", "arguments": ""}}
    one = repair_message(None, _SEARCH, tool_calls=[{**head, "function": {"name": "search", "arguments": args}}],
                         id_factory=ids)
    assert one.tool_calls == [] and [e.kind for e in one.errors] == ["invalid_json"]
    for chunks in _two_cuts(args):
        sr = StreamRepairer(_SEARCH, id_factory=ids, incremental=True)
        events = sr.feed_tool_calls([head])
        for piece in chunks:
            events += sr.feed_tool_calls([{"index": 0, "function": {"arguments": piece}}])
        events += sr.finish()
        assert not [e for e in events if isinstance(e, (ToolCallStart, ToolArgsDelta, ToolCallDelta))], chunks
        assert not sr.after_header and sr.result.errors == one.errors


@pytest.mark.parametrize("step", [1, 3, 7])
def test_a_call_that_breaks_after_its_header_is_left_unclosed(step: int) -> None:
    """Unquoted text in a later member, after the header and the first member went out: the call fails
    (failed_after_header) and what went out stays as it went out. Closed, it was a valid call of its own, the member
    the model wrote dropped (`{"path": "a"}`), which an agent runs; unclosed, it is not JSON, which agents refuse."""
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {
        "path": {"type": "string"}, "n": {"type": "string"}}, "required": ["path"]}}}]
    text = '<tool_call>{"name": "search", "arguments": {"path": "a", "n": 2024 x}}</tool_call>'
    r = StreamRepairer(tools, incremental=True, id_factory=ids)
    events = [e for i in range(0, len(text), step) for e in r.feed(text[i:i + step])] + r.finish()
    args = "".join(e.text for e in events if isinstance(e, ToolArgsDelta))
    assert [e.name for e in events if isinstance(e, ToolCallStart)] == ["search"]
    assert args.startswith('{"path": "a"') and not args.rstrip().endswith("}"), args
    assert [i.kind for i in r.after_header] == ["failed_after_header"]
