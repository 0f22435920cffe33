"""MiniCPM5's calls: `<function name="f"><param name="k">v</param></function>`, bare (its chat template puts no
section around them) or inside `<tool_call>`; a value may sit in a CDATA section. A block in a sentence, in a
fenced sample, naming no declared tool, or with prose or other tags among its parameters is text; one cut off by the
end of the text (generation stopped by max_tokens) is text reported `truncated`, as the other formats' cut calls."""

from __future__ import annotations

from typing import Any

import pytest

from repair import family_for_parser_type, repair_message, sniff_template
from tests.repair.helpers import assert_stream_matches, calls_of, ids

WEATHER: list[dict[str, Any]] = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"]}}}]


def _call(city: str, extra: str = "") -> str:
    return f'<function name="get_weather"><param name="city">{city}</param>{extra}</function>'


@pytest.mark.parametrize(("text", "calls", "content"), [
    (_call("Warsaw"), [("get_weather", {"city": "Warsaw"})], None),
    ("Checking both.\n" + _call("Paris", '<param name="days">3</param>') + "\n" + _call("Rome"),
     [("get_weather", {"city": "Paris", "days": 3}), ("get_weather", {"city": "Rome"})], "Checking both."),
    (_call("<![CDATA[Aix & <Provence>]]>"), [("get_weather", {"city": "Aix & <Provence>"})], None),
    ("<tool_call>\n" + _call("Oslo") + "\n</tool_call>", [("get_weather", {"city": "Oslo"})], None),
])
def test_calls(text: str, calls: list[tuple[str, Any]], content: str | None) -> None:
    r = repair_message(text, WEATHER, id_factory=ids)
    assert calls_of(r) == calls
    assert r.content == content
    assert r.repairs == [] and r.errors == [] and r.format == "minicpm5"
    assert_stream_matches(text, WEATHER)


@pytest.mark.parametrize("text", [
    "Write it as " + _call("Paris") + " and the server runs it.",
    "```xml\n" + _call("Paris") + "\n```",
    _call("Paris").replace("get_weather", "get_forecast"),
    '<function name="get_weather"/>',
    '<function name="get_weather">\nThe function takes a city.',
    '<function name="get_weather"><city>Paris</city>',
    '<function name="get_weather"><param name="city">Paris</param>\nand so on',
    '<function name="get_weather"><city>Paris</city></function>',
])
def test_text(text: str) -> None:
    r = repair_message(text, WEATHER, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert_stream_matches(text, WEATHER)


@pytest.mark.parametrize("text", [
    '<function name="get_weather"><param name="city">Paris</param>',
    '<function name="get_weather"><param name="city">Par',
    '<function name="get_weather"><param name="city">Paris</param><param name="days">3</par',
    '<function name="get_weather"><param name="city">Paris</param>\n<param na',
    '<function name="get_weather"><param name="city">Paris</param></func',
    'Checking.\n<function name="get_weather">\n',
    _call("Paris") + "\n" + '<function name="get_weather"><param name="city">Ro',
])
def test_a_call_cut_off_by_the_end_of_the_text_is_reported(text: str) -> None:
    r = repair_message(text, WEATHER, id_factory=ids)
    whole = [("get_weather", {"city": "Paris"})] if text.startswith(_call("Paris")) else []
    assert calls_of(r) == whole
    assert [e.kind for e in r.errors] == ["truncated"]
    assert r.content == (text[len(_call("Paris")) + 1:] if whole else text)
    assert_stream_matches(text, WEATHER)


def test_family_names() -> None:
    assert family_for_parser_type("minicpm5") == "minicpm5"
    template = 'Call a function as <function name="fn"><param name="p">value</param></function>.'
    assert sniff_template(template) == "minicpm5"
