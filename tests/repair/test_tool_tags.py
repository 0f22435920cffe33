"""Calls written as XML whose tag is the declared tool's name and whose children are its parameters (Cline's and
Roo Code's text protocol, written by models given native tools; outputs quoted in bug reports: data/wild.jsonl)."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids, stream
from tests.repair.incremental_helpers import assert_incremental_matches


def _tool(name: str, props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": props, "required": list(required)}}}


TOOLS = [
    _tool("read_file", {"path": {"type": "string"}}, ("path",)),
    _tool("execute_command", {"command": {"type": "string"}, "requires_approval": {"type": "boolean"},
                              "timeout": {"type": "integer"}}, ("command",)),
    _tool("write_to_file", {"path": {"type": "string"}, "content": {"type": "string"},
                            "options": {"type": "object"}, "tags": {"type": "array"}}, ("path",)),
]


def _check(text: str) -> Any:
    r = repair_message(text, TOOLS, id_factory=ids)
    assert_stream_matches(text, TOOLS)
    assert_incremental_matches(text, TOOLS)
    return r


def test_a_call_after_prose_leaves_the_prose() -> None:
    r = _check("Let me read it.\n\n<read_file>\n<path>src/main.py</path>\n</read_file>")
    assert calls_of(r) == [("read_file", {"path": "src/main.py"})]
    assert r.content == "Let me read it."
    assert [x.kind for x in r.repairs] == ["format:tool_tags"]


def test_values_are_typed_from_the_schema() -> None:
    r = _check("<execute_command><command>ls -la</command><requires_approval>false</requires_approval>"
               "<timeout>30</timeout></execute_command>")
    assert calls_of(r) == [("execute_command", {"command": "ls -la", "requires_approval": False, "timeout": 30})]


def test_string_values_keep_their_text_and_lose_only_their_framing_newlines() -> None:
    body = "<div>\n  <p>false</p>\n</div>\n"
    r = _check(f"<write_to_file>\n<path>a.html</path>\n<content>\n{body}</content>\n"
               '<options>{"mode": 420}</options>\n<tags>["x"]</tags>\n</write_to_file>\nDone.')
    assert calls_of(r) == [("write_to_file", {"path": "a.html", "content": body.rstrip("\n"),
                                              "options": {"mode": 420}, "tags": ["x"]})]
    assert r.content == "Done."


def test_two_calls() -> None:
    r = _check("<read_file>\n  <path>a</path>\n</read_file>\n<read_file>\n  <path>b</path>\n</read_file>")
    assert calls_of(r) == [("read_file", {"path": "a"}), ("read_file", {"path": "b"})]


@pytest.mark.parametrize("text", [
    "```xml\n<read_file>\n<path>src/main.py</path>\n</read_file>\n```",
    "~~~\n<read_file>\n<path>src/main.py</path>\n</read_file>\n~~~",
    "Call it as `<read_file><path>x</path></read_file>`.",
    "I will use <read_file><path>x</path></read_file> next.",
    "<read_file> reads a file; give it a <path>.",
    "<read_file>\nThis tool reads a file.\n</read_file>",
    "<read_file>\n<file>x</file>\n</read_file>",
    "<read_file>\n<path>a</path>\n<path>b</path>\n</read_file>",
    "<read_file path=\"x\">\n</read_file>",
    "<Read_File>\n<path>x</path>\n</Read_File>",
    "<open_file>\n<path>x</path>\n</open_file>",
    "<div>\n<p>hello</p>\n</div>",
    "<read_file>\n<path>x</path>\nand then I stopped writing tags",
])
def test_not_calls(text: str) -> None:
    r = _check(text)
    assert r.tool_calls == [] and r.errors == []
    assert r.content == text


@pytest.mark.parametrize("text", [
    "<read_file>\n<path>src/main.py</path>\n",
    "<read_file>\n<path>src/ma",
    "<read_file>\n<path>src/main.py</path>\n</read_fi",
    "<read_file>\n<pa",
])
def test_a_call_cut_off_by_the_end_of_the_text_is_reported(text: str) -> None:
    r = _check(text)
    assert r.tool_calls == []
    assert [e.kind for e in r.errors] == ["truncated"]
    assert r.content == text


def test_a_stream_does_not_hold_html() -> None:
    text = "<div>\n<p>hello</p>\n"
    _, content, _, _ = stream([text], TOOLS)
    assert content == text


@pytest.mark.parametrize("unit", ["<read_file>\n", "<read_file><path>", "<read_file>\n<path>x</path>\n",
                                  "<path></path>", "<read_file>\n```\n", "<read_file>\n<path>\n</path>"])
def test_nested_or_unclosed_tags_stay_linear(unit: str) -> None:
    n = 200_000
    text = (unit * (n // len(unit) + 1))[:n]
    r = repair_message(text, TOOLS)  # (quadratic work here would show as minutes of this test's time)
    result, content, _, _ = stream([text[i:i + 4096] for i in range(0, n, 4096)], TOOLS)
    assert r.tool_calls == [] and result.tool_calls == []
    assert content == (r.content or "")
