"""A harness's record of an earlier call (`<call_record tool="f">` with `<parameter name="k">` children), copied by
a model to make its own call (can1357/oh-my-pi#92): the call, at a line start (indented or not), naming a declared
tool and closed by its own </call_record>. Anywhere else it is a quote of the format and stays text."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["path"]}}}]
RECORD = '<call_record tool="read">\n<parameter name="path">a.py</parameter>\n<parameter name="limit">5</parameter>\n' \
         "</call_record>"


@pytest.mark.parametrize("before", ["", "Reading it.\n", "Reading it.\n\n  "], ids=["alone", "after_prose", "indented"])
def test_a_record_on_its_own_line_is_the_call(before: str) -> None:
    text = before + RECORD
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("read", {"path": "a.py", "limit": 5})]
    assert (r.content or "").strip() == before.strip()
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize("text", [
    "The harness writes " + RECORD + " for calls it made.",
    "Its format is `" + RECORD.replace("\n", " ") + "`.",
    "```xml\n" + RECORD + "\n```",
    RECORD.replace('tool="read"', 'tool="write"'),
    RECORD.replace("</call_record>", "and more words\n</call_record>"),
], ids=["in_a_sentence", "inline_code", "fenced", "undeclared_tool", "prose_inside"])
def test_a_quoted_or_broken_record_stays_text(text: str) -> None:
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert_stream_matches(text, TOOLS)


def test_a_record_not_closed_before_the_next_stays_text() -> None:
    first = '<call_record tool="read">\n<parameter name="path">b.py</parameter>\n'
    r = repair_message(first + RECORD, TOOLS, id_factory=ids)
    assert calls_of(r) == [("read", {"path": "a.py", "limit": 5})]
    assert r.content == first.strip()
    assert_stream_matches(first + RECORD, TOOLS)


def test_a_record_cut_off_is_truncated_and_its_text_kept() -> None:
    text = "Reading it.\n" + RECORD[:RECORD.index("</call_record>")]
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert [e.kind for e in r.errors] == ["truncated"]
    assert_stream_matches(text, TOOLS)


def test_without_generic_forms_a_record_is_text() -> None:
    r = repair_message(RECORD, TOOLS, id_factory=ids, generic_forms=False)
    assert r.tool_calls == [] and r.content == RECORD
