"""Functionary v3.2 (`>>>name\n{...}` per call, `>>>all\ntext` for text, as llama.cpp's parser reads it): calls
where the model made them and the `>>>all` marker out of the content; the syntax shown in prose, inline code or a
fenced block, or naming an undeclared tool, stays text. Functionary v3.1's `<function=name>{...}</function>` is
read as well."""

from __future__ import annotations

import pytest

from repair import ContentDelta, StreamRepairer, repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"tz": {"type": "string"}}}}}
TOOLS = [WEATHER, TIME]


def test_v32_call_is_a_call() -> None:
    text = '>>>get_weather\n{"location": "Paris"}'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert r.content is None and r.errors == [] and r.repairs == [] and r.format == "functionary"
    assert_stream_matches(text, TOOLS)


def test_v32_text_then_calls() -> None:
    text = '>>>all\nLet me check both.>>>get_weather\n{"location": "Oslo"}>>>get_time\n{"tz": "Europe/Oslo"}'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Oslo"}), ("get_time", {"tz": "Europe/Oslo"})]
    assert r.content == "Let me check both."
    assert_stream_matches(text, TOOLS)


def test_v32_all_alone_is_content() -> None:
    text = ">>>all\nHello! How can I help?"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == "Hello! How can I help?"
    assert_stream_matches(text, TOOLS)


def test_v32_cut_off_call_is_truncated_and_kept() -> None:
    text = '>>>get_weather\n{"location": "Par'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text and [e.kind for e in r.errors] == ["truncated"]
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize("text", [
    '>>>search\n{"q": "x"}',                                       # an undeclared tool
    'Write `>>>get_weather\n{"location": "Paris"}` to call it.',   # inline code
    'Example:\n```\n>>>get_weather\n{"location": "Paris"}\n```\n',  # a fenced example
    ">>>get_weather\nthe weather tool, for a city",                # no arguments object
    ">>> get_weather\n{}",                                         # a REPL prompt
])
def test_v32_shown_syntax_stays_text(text: str) -> None:
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert_stream_matches(text, TOOLS)


def test_v31_function_tag_is_a_call() -> None:
    text = 'Sure.<function=get_weather>{"location": "Rome"}</function>'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Rome"})] and r.content == "Sure."
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize("pieces", [
    [">>>", "all", "\n", "Let me", " check", " the weather.", ">>>", "get_weather", "\n", '{"location": "Oslo"}'],
    [">>>al", "l\nLet me check", " the weather.>", '>>get_weather\n{"location": "Oslo"}'],
], ids=["tokens whole", "marker cut"])
def test_v32_text_streams_as_it_comes_and_a_call_after_it_is_a_call(pieces: list[str]) -> None:
    """The `>>>all` marker is dropped as it comes (a stream held the text after it to the end)."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    fed = [e for p in pieces[:-1] for e in sr.feed(p)]
    assert "".join(e.text for e in fed if isinstance(e, ContentDelta)) == "Let me check the weather."
    sr.feed(pieces[-1])
    sr.finish()
    assert calls_of(sr.result) == [("get_weather", {"location": "Oslo"})]
    text = "".join(pieces)
    assert repair_message(text, TOOLS, id_factory=ids).content == "Let me check the weather."
    assert_stream_matches(text, TOOLS)
    assert_incremental_matches(text, TOOLS)


def test_v32_text_after_a_call_is_content() -> None:
    text = '>>>get_weather\n{"location": "Oslo"}>>>all\nChecking.'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Oslo"})] and r.content == "Checking."
    assert_stream_matches(text, TOOLS)
    assert_incremental_matches(text, TOOLS)
