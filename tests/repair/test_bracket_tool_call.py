"""MiniMax-M2's bracketed fallback, `[TOOL_CALL] ... [/TOOL_CALL]`, around a JSON call object
(lmstudio-bug-tracker#1177): the call is the model's, and its markup does not stay in the content."""

from __future__ import annotations

from typing import Any

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids


def _tool(name: str, *props: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": "string"} for p in props}, "required": list(props)}}}


WRITE = _tool("write", "filePath", "content")
REPORTED = ('[TOOL_CALL] { "tool": "write", "args": { "filePath": "test.html", "content": "<html>...</html>" } } '
            '[/TOOL_CALL]')


def test_a_json_body_is_the_call_and_its_markup_goes() -> None:
    r = repair_message(REPORTED, [WRITE], id_factory=ids)
    assert calls_of(r) == [("write", {"filePath": "test.html", "content": "<html>...</html>"})]
    assert r.content is None and r.errors == []
    assert r.format == "minimax_m2"
    assert_stream_matches(REPORTED, [WRITE])


def test_prose_around_the_block_stays() -> None:
    text = f"Writing the page.\n{REPORTED}\nDone."
    r = repair_message(text, [WRITE], id_factory=ids)
    assert calls_of(r) == [("write", {"filePath": "test.html", "content": "<html>...</html>"})]
    assert r.content == "Writing the page.\n\nDone."
    assert_stream_matches(text, [WRITE])


def test_a_json_body_naming_no_declared_tool_stays_text() -> None:
    text = '[TOOL_CALL] { "tool": "delete_all", "args": { "path": "/" } } [/TOOL_CALL]'
    r = repair_message(text, [WRITE], id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert [e.kind for e in r.errors] == ["unknown_name"]


def test_a_json_body_cut_off_inside_its_arguments_is_no_call() -> None:
    text = '[TOOL_CALL] { "tool": "write", "args": { "filePath": "test.html", "content": "<html>'
    r = repair_message(text, [WRITE], id_factory=ids)
    assert r.tool_calls == [] and r.content == text
