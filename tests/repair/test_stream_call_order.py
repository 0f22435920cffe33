"""Hermes blocks one after another, the first written in a form the stream cannot start as it comes (its arguments
under `args`, or a JSON string): the one-shot repair makes both calls, the first one first. The stream started the
second block's call at once, so the client got the calls the other way round (and each with the other's id)."""

from __future__ import annotations

import pytest

from tests.repair.corpus import TOOLS
from tests.repair.helpers import assert_stream_matches
from tests.repair.incremental_helpers import assert_incremental_matches, expected, stream_incremental

SECOND = '<tool_call>{"name": "get_weather", "arguments": {"location": "Paris"}}</tool_call>'


@pytest.mark.parametrize("first", [
    '{"name": "read_file", "args": {"path": "a.py"}}',
    '{"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"}',
])
@pytest.mark.parametrize("sep", ["\n", "\n\n", ""])
def test_a_later_block_does_not_go_out_before_an_earlier_call(first: str, sep: str) -> None:
    text = f"<tool_call>{first}</tool_call>{sep}{SECOND}"
    r, calls = expected(text, TOOLS)
    assert [c[1] for c in calls] == ["read_file", "get_weather"]
    for chunks in (list(text), [text[:len(text) - 5], text[len(text) - 5:]], [text]):
        sr, got = stream_incremental(chunks, TOOLS)
        assert not sr.after_header
        assert got.call_list() == calls
        assert got.content == (r.content or "")
        assert sr.result.tool_calls == r.tool_calls
    assert_incremental_matches(text, TOOLS)
    assert_stream_matches(text, TOOLS)


def test_a_block_naming_no_tool_before_a_call() -> None:
    """A block whose call is never made (it names no declared tool) before a call: the answer is the one-shot one."""
    text = '<tool_call>{"name": "nope", "arguments": {"a": 1}}</tool_call>\n' + SECOND
    r, calls = expected(text, TOOLS)
    assert [c[1] for c in calls] == ["get_weather"]
    sr, got = stream_incremental(list(text), TOOLS)
    assert got.call_list() == calls and not sr.after_header
    assert got.content == (r.content or "")
