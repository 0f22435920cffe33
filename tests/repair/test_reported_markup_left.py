"""Markup of a call that is read leaves nothing behind in the content, for shapes quoted in bug reports
(tests/repair/data/wild.jsonl): a closing tag the model wrote twice (GLM-5.2 in Kilo Code: `</tool_call></tool_call>`)
and a JSON call written inside a `<functioncall ...>` tag (a local model in Home Assistant's Assist). Both calls
were read before; the stray `</tool_call>` and the tag's `<functioncall` and `>` stayed in the content."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches


def _tool(name: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": props, "required": required}}}


READ = [_tool("read", {"filePath": {"type": "string"}, "limit": {"type": "number"}}, ["filePath"])]
# Home Assistant declares `domain` a list of strings; here it is a string, so that the report's call validates and
# only what the tag leaves behind is under test (with the list, the corpus case stays open: see differences.json)
TURN_ON = [_tool("HassTurnOn", {"name": {"type": "string"}, "domain": {"type": "string"}}, [])]

GLM_TWICE = ("<tool_call>read<arg_key>filePath</arg_key><arg_value>/abs/path/puzzle.txt</arg_value></tool_call>"
             "</tool_call>")
HERMES_TWICE = '<tool_call>\n{"name": "read", "arguments": {"filePath": "a.md"}}\n</tool_call>\n</tool_call>'
FUNCTIONCALL = '<functioncall {"name": "HassTurnOn", "arguments": {"domain": "light"}}>'


def _check_streams(text: str, tools: list[dict[str, Any]]) -> None:
    for seed in range(3):
        assert_stream_matches(text, tools, seed=seed)
        assert_incremental_matches(text, tools, seed=seed)


@pytest.mark.parametrize(("text", "call", "content"), [
    (GLM_TWICE, ("read", {"filePath": "/abs/path/puzzle.txt"}), None),
    (HERMES_TWICE, ("read", {"filePath": "a.md"}), None),
    (GLM_TWICE + "\nDone.", ("read", {"filePath": "/abs/path/puzzle.txt"}), "Done."),
])
def test_a_closing_tag_written_twice_is_the_calls_markup(text: str, call: tuple[str, Any], content: str | None
                                                         ) -> None:
    r = repair_message(text, READ, id_factory=ids)
    assert calls_of(r) == [call]
    assert r.content == content
    assert "closing_tag" in {x.kind for x in r.repairs}
    assert r.errors == []
    _check_streams(text, READ)


@pytest.mark.parametrize("text", [
    '<tool_call>{"name": "read", "arguments": {"filePath": "a.md"}}</tool_call>\nThen </tool_call> ends a block.',
    '<tool_call>{"name": "read", "arguments": {"filePath": "a.md"}}</tool_call>\n'
    '<tool_call>{"name": "read", "arguments": {"filePath": "b.md"}}</tool_call>',
])
def test_a_closing_tag_after_prose_or_another_call_is_not_a_repeat(text: str) -> None:
    """Only a closer right after the call's own (whitespace between) is the call's: one after prose is prose, and
    a second block's closer closes that block."""
    r = repair_message(text, READ, id_factory=ids)
    assert "closing tag written twice" not in str(r.repairs)
    if "Then" in text:
        assert r.content == "Then </tool_call> ends a block."
    else:
        assert [a["filePath"] for _, a in calls_of(r)] == ["a.md", "b.md"]


def test_a_json_call_inside_a_functioncall_tag_leaves_no_tag_behind() -> None:
    r = repair_message(FUNCTIONCALL, TURN_ON, id_factory=ids)
    assert calls_of(r) == [("HassTurnOn", {"domain": "light"})]
    assert r.content is None
    assert r.errors == []
    _check_streams(FUNCTIONCALL, TURN_ON)


@pytest.mark.parametrize("text", [
    '<functioncall {"name": "delete_all", "arguments": {}}>',              # names no declared tool
    'Write `<functioncall {"name": "HassTurnOn", "arguments": {}}>` to call it.',  # quoted in inline code
])
def test_a_functioncall_tag_that_is_no_call_stays_text(text: str) -> None:
    r = repair_message(text, TURN_ON, id_factory=ids)
    assert r.tool_calls == []
    assert r.content == text
    _check_streams(text, TURN_ON)
