"""A call whose header and argument pieces went out, cut by the end of the stream (the token limit, a stop string,
the upstream's end) while its arguments were still open: the one-shot repair keeps such a call as text (`truncated`:
a command or a file cut in half is another command, another file), and the stream never completes what the model
did not write. Its arguments stay the prefix the client already has (invalid JSON, what OpenAI's own API sends for a
call cut by max_tokens); the failure is reported (`failed_after_header`, truncated). Where the one-shot repair
closes the arguments itself (cut at a clean point) the stream closes them the same way, and a call whose arguments
are whole but fail otherwise is still completed and reported."""

from __future__ import annotations

import json
from typing import Any

import pytest

from repair import StreamRepairer, repair_message
from repair.incremental import ToolArgsDelta, ToolCallStart, canonical_arguments
from tests.repair.helpers import chunkings, ids

SHELL = [{"type": "function", "function": {"name": "shell", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"},
                                     "env": {"type": "array", "items": {"type": "string"}}},
    "required": ["command"]}}}]
WHOLE = {"command": "printf 'hello world' > out.txt", "timeout": 30, "env": ["A=1", "B=2"]}
ARGS = json.dumps(WHOLE)
# cut points inside the arguments where the one-shot repair refuses the call
CUTS = {
    "inside a string": ARGS.index("wor") + 3,
    "after a key": ARGS.index('"timeout":') + len('"timeout":'),
    "inside a number": ARGS.index("30") + 1,
    "inside an array": ARGS.index('"B=') + 3,
    "after a comma": ARGS.index(', "env"') + 1,
}


def _streamed(feed: Any, chunks: list[str], **opts: Any) -> tuple[StreamRepairer, dict[int, list[str]]]:
    """The stream's events: what a client assembles per call (header name, arguments)."""
    sr = StreamRepairer(SHELL, id_factory=ids, incremental=True, **opts)
    calls: dict[int, list[str]] = {}
    events = [e for ch in chunks for e in feed(sr, ch)] + sr.finish()
    for e in events:
        if isinstance(e, ToolCallStart):
            calls[e.index] = [e.name, ""]
        elif isinstance(e, ToolArgsDelta):
            calls[e.index][1] += e.text
    return sr, calls


def _text(sr: StreamRepairer, ch: str) -> list[Any]:
    return sr.feed(ch)


def _native(sr: StreamRepairer, ch: str) -> list[Any]:
    return sr.feed_tool_calls([{"index": 0, "id": "call_x", "function": {"name": "shell", "arguments": ch}}])


def _cut_report(sr: StreamRepairer) -> None:
    (issue,) = sr.after_header
    assert issue.kind == "failed_after_header" and issue.call_index == 0 and "truncated" in issue.detail


@pytest.mark.parametrize("where", list(CUTS))
def test_a_text_call_cut_in_its_arguments_goes_out_as_cut(where: str) -> None:
    text = '<tool_call>\n{"name": "shell", "arguments": ' + ARGS[:CUTS[where]]
    one_shot = repair_message(text, SHELL, id_factory=ids)
    assert not one_shot.tool_calls and [e.kind for e in one_shot.errors] == ["truncated"]
    for chunks in chunkings(text, seed=len(where)):
        sr, calls = _streamed(_text, chunks)
        assert list(calls) == [0] and calls[0][0] == "shell", chunks
        args = calls[0][1]
        assert ARGS.startswith(args.rstrip(", ")) and len(args) <= CUTS[where], (args, chunks)  # nothing added
        with pytest.raises(ValueError):
            json.loads(args)
        _cut_report(sr)
        assert sr.result.content == text  # the call stays text in the answer, as one-shot


@pytest.mark.parametrize("where", list(CUTS))
def test_a_structured_call_cut_in_its_arguments_goes_out_as_cut(where: str) -> None:
    cut = ARGS[:CUTS[where]]
    one_shot = repair_message(None, SHELL, tool_calls=[
        {"id": "call_x", "type": "function", "function": {"name": "shell", "arguments": cut}}], id_factory=ids)
    assert not one_shot.tool_calls and [e.kind for e in one_shot.errors] == ["truncated"]
    for chunks in chunkings(cut, seed=len(where)):
        sr, calls = _streamed(_native, chunks)
        args = calls[0][1]
        assert ARGS.startswith(args) and len(args) <= CUTS[where], (args, chunks)
        with pytest.raises(ValueError):
            json.loads(args)
        _cut_report(sr)


def test_a_cut_the_one_shot_repair_closes_is_closed_the_same() -> None:
    """Structured arguments cut right after a whole member: the one-shot repair closes the object (`truncated`,
    repaired) and emits the call; the stream sends the same closing, with no failure. A text call cut there is
    refused by the one-shot repair (its arguments object never closed), and goes out as cut."""
    cut = ARGS[:ARGS.index(', "timeout"')]
    sr, calls = _streamed(_native, list(cut))
    assert json.loads(calls[0][1]) == {"command": WHOLE["command"]} and not sr.after_header
    sr, calls = _streamed(_text, list('<tool_call>{"name": "shell", "arguments": ' + cut))
    assert calls[0][1] == cut
    _cut_report(sr)


def test_whole_arguments_that_fail_the_schema_are_still_completed() -> None:
    text = '<tool_call>{"name": "shell", "arguments": {"command": "ls", "timeout": "soon"}}</tool_call>'
    sr, calls = _streamed(_text, list(text))
    (issue,) = sr.after_header
    assert issue.kind == "failed_after_header" and "truncated" not in issue.detail
    assert json.loads(calls[0][1]) == {"command": "ls", "timeout": "soon"}


def test_a_call_cut_past_the_bound_goes_out_as_cut() -> None:
    """Past `max_chars` the call's later pieces go out unrepaired; cut then, it is not closed either."""
    long = "x" * 300
    pieces = ['{"command": "printf ', long[:100], long[100:200], long[200:]]
    sr, calls = _streamed(_native, pieces, max_chars=150)
    assert calls[0][1] == '{"command": "printf ' + long
    assert any(i.kind == "failed_after_header" and "truncated" in i.detail for i in sr.after_header)
    assert [e.kind for e in sr.result.errors] == ["unrepaired"]


def test_a_call_that_completes_is_unchanged() -> None:
    for feed, text in ((_text, '<tool_call>{"name": "shell", "arguments": ' + ARGS + "}</tool_call>"),
                       (_native, ARGS)):
        sr, calls = _streamed(feed, list(text))
        assert calls[0][1] == canonical_arguments(ARGS) and not sr.after_header
