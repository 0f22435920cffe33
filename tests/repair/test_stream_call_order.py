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


def test_a_broken_started_call_is_not_completed_as_a_later_one() -> None:
    """A block whose header went out with `{"path": "` and whose wrapper then broke (prose where its `}` belongs,
    in the same delta as the rest of its string): the one-shot repair makes the later calls only. The started call
    was completed with the arguments of the later `read_file` call (they continue `{"path": "`), so that call went
    out first, ahead of the call written before it: the order and ids were not the one-shot answer's."""
    head = '<tool_call>{"name": "read_file", "arguments": {"path": "'
    text = (head + 'g.py"} oops\n' + SECOND
            + '\n<tool_call>{"name": "read_file", "arguments": {"path": "t.py"}}</tool_call>')
    r, calls = expected(text, TOOLS)
    assert [c[1:] for c in calls] == [("get_weather", '{"location": "Paris"}'), ("read_file", '{"path": "t.py"}')]
    sr, got = stream_incremental([head, text[len(head):]], TOOLS)
    assert got.call_list()[0][1:] == ("read_file", '{"path": "')  # went out before the block broke
    assert [i.kind for i in sr.after_header] == ["failed_after_header"]
    assert got.call_list()[1:] == [(f"call_{k + 1}", n, a) for k, (_, n, a) in enumerate(calls)]
    assert sr.result.tool_calls == [{**c, "id": f"call_{k + 1}"} for k, c in enumerate(r.tool_calls)]


def test_a_call_that_failed_its_schema_does_not_swallow_the_next_call() -> None:
    """A hermes call whose whole arguments went out and fail the schema (`read_file` without its required `path`),
    then a call read at the finish (Mistral's markup) to the same tool: the one-shot answer is that second call,
    under the id the first one's position gives it. It was taken for the started call's repaired form (same id,
    same name) and never sent: the client got only the failed `{}`."""
    text = '<tool_call>{"name": "read_file", "arguments": {}}</tool_call> [TOOL_CALLS]read_file[ARGS]{"path": "t.py"}'
    r, calls = expected(text, TOOLS)
    assert [c[1:] for c in calls] == [("read_file", '{"path": "t.py"}')]
    for chunks in (list(text), [text]):
        sr, got = stream_incremental(chunks, TOOLS)
        assert got.call_list() == [("call_0", "read_file", "{}"), ("call_1", "read_file", '{"path": "t.py"}')]
        assert [(i.kind, i.call_index) for i in sr.after_header] == [("failed_after_header", 0)]
        assert "not part of the repaired answer" in sr.after_header[0].detail
        assert sr.result.tool_calls == [{**r.tool_calls[0], "id": "call_1"}]
