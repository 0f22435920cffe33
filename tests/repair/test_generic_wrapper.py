"""llama.cpp's generic tool-call format (for a template it has no parser of its own for) wraps the calls in an
object: `{"tool_call": {"name": ..., "arguments": ...}}`, or `{"tool_calls": [...]}` when parallel calls are
allowed. The calls were read from inside the wrapper and its keys and braces stayed in the content
(`{"tool_call":\\n\\n}`); the wrapper is now part of the call. A wrapper holding anything else beside its calls is
not read whole (the calls inside are, as bare objects, and the rest stays text)."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

WEATHER: list[dict[str, Any]] = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

ONE = '{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}'
TWO = ('{\n  "tool_calls": [\n    {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "0"},\n'
       '    {"name": "get_weather", "arguments": {"city": "Rome"}, "id": "1"}\n  ]\n}')


@pytest.mark.parametrize(("text", "calls", "content"), [
    (ONE, [("get_weather", {"city": "Paris"})], None),
    (TWO, [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})], None),
    ("Checking both.\n" + TWO, [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})],
     "Checking both."),
])
def test_the_wrapper_is_part_of_the_call(text: str, calls: list[tuple[str, Any]], content: str | None) -> None:
    r = repair_message(text, WEATHER, id_factory=ids)
    assert calls_of(r) == calls
    assert r.content == content
    assert r.errors == []
    assert_stream_matches(text, WEATHER)


def test_a_wrapper_cut_off_inside_its_call_is_truncated_and_stays_text() -> None:
    text = ONE[:-4]
    r = repair_message(text, WEATHER, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"] and r.content == text


def test_the_generic_plain_answer_is_no_call() -> None:
    text = '{"response": "It is sunny in Paris."}'
    r = repair_message(text, WEATHER, id_factory=ids)
    assert r.tool_calls == [] and r.errors == [] and r.content == text


SEARCH: list[dict[str, Any]] = [*WEATHER, {"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}]
W = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
S = '{"name": "search", "arguments": {"q": "x"}}'


@pytest.mark.parametrize(("text", "calls", "kept"), [
    # other members are text nobody asked to drop: the calls inside are read as bare objects, the rest stays
    ('{"tool_call": ' + W + ', "note": "example"}', [("get_weather", {"city": "Paris"})], '"note": "example"'),
    ('{"tool_call": ' + W + ', "thought": "need weather"', [("get_weather", {"city": "Paris"})], '"thought"'),
    ("{'tool_call': " + W + ", 'thought': 'x'}", [("get_weather", {"city": "Paris"})], "'thought': 'x'"),
    ('{"tool_call": ' + W + ', "note": "x",}', [("get_weather", {"city": "Paris"})], '"note": "x"'),
    # the key twice (a decoder keeps the last) or both keys: every call is read, none dropped
    ('{"tool_call": ' + W + ', "tool_call": ' + S + '}', [("get_weather", {"city": "Paris"}), ("search", {"q": "x"})],
     '"tool_call"'),
    ('{"tool_call": ' + W + ', "tool_calls": [' + S + ']}',
     [("get_weather", {"city": "Paris"}), ("search", {"q": "x"})], '"tool_calls"'),
])
def test_a_wrapper_with_more_than_its_calls_is_not_read_whole(text: str, calls: list[tuple[str, Any]],
                                                              kept: str) -> None:
    r = repair_message(text, SEARCH, id_factory=ids)
    assert calls_of(r) == calls
    assert r.content is not None and kept in r.content
