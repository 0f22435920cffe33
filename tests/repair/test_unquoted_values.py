"""Unquoted JSON values: json-repair reads `2024 election results` as the number 2024 and drops the rest, or
splits `10:00, 11:00 tomorrow` into a key the model never wrote. Its output is taken only when every word the
model wrote outside strings survives in it and every number it holds is one the model wrote; otherwise the call
fails (invalid_json) and its text stays."""

from __future__ import annotations

import pytest

from repair import repair_message
from repair.salvage import Decoded, Failed, decode_at
from tests.repair.helpers import assert_stream_matches, calls_of, ids


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
