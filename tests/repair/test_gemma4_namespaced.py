"""Gemma 4 writes an MCP tool's namespaced name as declared, colons and all (`call:github:create_issue{...}`):
the name runs to the arguments' brace. Read up to its first colon, one call became several (`github`, then
`create_issue` as a call with `call` left out), each but the last an unknown name, and the block's text stayed in the
content beside the call made."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids


def _tools(name: str) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}}}]


CALL = '<|tool_call>call:google:mcp:text_generation:create-pdf-file{content:<|"|>hi<|"|>}<tool_call|>'


@pytest.mark.parametrize("opener", ["", "Sure.\n"])
def test_a_namespaced_name_is_one_call(opener: str) -> None:
    tools = _tools("google:mcp:text_generation:create-pdf-file")
    r = repair_message(opener + CALL, tools, id_factory=ids)
    assert calls_of(r) == [("google:mcp:text_generation:create-pdf-file", {"content": "hi"})]
    assert r.errors == [] and r.repairs == []
    assert r.content == (opener.strip() or None)
    assert_stream_matches(opener + CALL, tools)


def test_an_undeclared_namespaced_name_is_one_failure_and_the_text_stays() -> None:
    """Its last part names a declared tool: still no call (a namespace is not a slip of the name), one error."""
    r = repair_message(CALL, _tools("create-pdf-file"), id_factory=ids)
    assert r.tool_calls == []
    assert [e.kind for e in r.errors] == ["unknown_name"]
    assert r.content == CALL


def test_a_name_of_many_parts_is_still_one_call() -> None:
    text = '<|tool_call>call:a:b:c:d:e:f:g:h:get_weather{content:<|"|>x<|"|>}<tool_call|>'
    r = repair_message(text, _tools("get_weather"), id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["unknown_name"] and r.content == text
