"""Kimi K3's XTML tool calls (`<|open|>tools<|sep|><|open|>call tool="f" ...`): calls where the model made them, and
none where the syntax is only shown; its think channel as reasoning, its response channel's and message's markers
out of the content."""

from __future__ import annotations

import pytest

from repair import ContentDelta, ReasoningDelta, StreamRepairer, repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches

RUN = {"type": "function", "function": {"name": "run_command", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}, "task_id": {"type": "integer"}},
    "required": ["command"]}}}
TOOLS = [RUN]


def _call(args: str, name: str = "run_command") -> str:
    return f'<|open|>call tool="{name}" index="1"<|sep|>{args}<|close|>call<|sep|>'


def _arg(key: str, value: str, kind: str | None = "string") -> str:
    typed = f' type="{kind}"' if kind else ""
    return f'<|open|>argument key="{key}"{typed}<|sep|>{value}<|close|>argument<|sep|>'


def _section(*calls: str) -> str:
    return "<|open|>tools<|sep|>" + "".join(calls) + "<|close|>tools<|sep|><|close|>message<|sep|><|end_of_msg|>"


THINK, END_THINK = "<|open|>think<|sep|>", "<|close|>think<|sep|>"
RESPONSE, END_RESPONSE = "<|open|>response<|sep|>", "<|close|>response<|sep|>"
END = "<|close|>message<|sep|><|end_of_msg|>"


def _matches(text: str) -> None:
    assert_stream_matches(text, TOOLS)
    assert_incremental_matches(text, TOOLS)


def test_a_section_is_calls_and_its_markers_leave_the_content() -> None:
    text = "Running it.\n" + _section(_call(_arg("command", "ls -la") + _arg("task_id", "7", "number")))
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": "ls -la", "task_id": 7})]
    assert r.content == "Running it." and r.errors == [] and r.repairs == []
    assert_stream_matches(text, TOOLS)


def test_string_values_are_byte_exact_and_other_types_are_json() -> None:
    code = '  echo "a < b" && printf \'%s\\n\' 1\n'
    text = _section(_call(_arg("command", code) + _arg("task_id", "3", None)))
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": code, "task_id": 3})]


def test_attribute_entities_are_decoded() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {'a"b': {"type": "string"}}}}}]
    r = repair_message(_section(_call(_arg("a&quot;b", "x"), name="f")), tools, id_factory=ids)
    assert calls_of(r) == [("f", {'a"b': "x"})]


def test_a_call_cut_off_is_reported_and_its_text_kept() -> None:
    text = "<|open|>tools<|sep|>" + '<|open|>call tool="run_command" index="1"<|sep|>' + _arg("command", "rm -r build")
    r = repair_message(text, TOOLS)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"] and r.content == text
    assert_stream_matches(text, TOOLS)


def test_the_syntax_shown_in_code_or_naming_no_tool_is_no_call() -> None:
    shown = _section(_call(_arg("command", "ls")))
    for text in (f"Kimi K3 writes `{shown}` for a call.", f"Kimi K3 writes\n```\n{shown}\n```\nfor a call.",
                 _section(_call(_arg("command", "ls"), name="delete_all"))):
        r = repair_message(text, TOOLS)
        assert r.tool_calls == [] and r.content == text
        assert_stream_matches(text, TOOLS)
    prose = "K3 opens a call with <|open|>call and names the tool in an attribute."
    assert repair_message(prose, TOOLS).content == prose
    assert_stream_matches(prose, TOOLS)


def test_the_think_channel_is_reasoning_and_the_response_channel_content() -> None:
    text = f"{THINK}The user greets me.{END_THINK}{RESPONSE}Hello! How can I help?{END_RESPONSE}{END}"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert (r.content, r.reasoning_content) == ("Hello! How can I help?", "The user greets me.")
    assert r.tool_calls == [] and r.errors == [] and r.repairs == []
    _matches(text)


def test_a_call_after_both_channels_leaves_neither_channel_marker() -> None:
    text = f"{THINK}List it.{END_THINK}{RESPONSE}Listing.{END_RESPONSE}" + _section(_call(_arg("command", "ls")))
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": "ls"})]
    assert (r.content, r.reasoning_content, r.repairs) == ("Listing.", "List it.", [])
    _matches(text)


def test_a_call_in_the_think_channel_is_made_only_when_none_is_made_outside() -> None:
    inside = f"{THINK}I could run " + _section(_call(_arg("command", "ls"))) + f" first.{END_THINK}"
    r = repair_message(inside + f"{RESPONSE}Done.{END_RESPONSE}", TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": "ls"})] and [i.kind for i in r.repairs] == ["think_block"]
    assert (r.content, r.reasoning_content) == ("Done.", "I could run \n first.")
    outside = inside + _section(_call(_arg("command", "pwd")))
    r = repair_message(outside, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": "pwd"})] and r.repairs == []
    for text in (inside, outside):
        _matches(text)


def test_a_think_channel_never_closed_ends_where_the_tools_open() -> None:
    """A forced call goes from the think channel straight to the tools channel: the call is made outside it."""
    text = f"{THINK}Must call it." + _section(_call(_arg("command", "ls")))
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": "ls"})] and r.repairs == []
    assert (r.content, r.reasoning_content) == (None, "Must call it.")
    unclosed = f"{THINK}Thinking{RESPONSE}Answer"
    r = repair_message(unclosed, TOOLS)
    assert (r.content, r.reasoning_content) == ("Answer", "Thinking")
    for t in (text, unclosed):
        _matches(t)


def test_the_message_end_markers_leave_the_content_without_a_tools_channel() -> None:
    for text in (f"Hello.{END}", f"{RESPONSE}Hello.\n{END_RESPONSE}\n{END}"):
        r = repair_message(text, TOOLS)
        assert (r.content, r.reasoning_content, r.errors) == ("Hello.", None, [])
        _matches(text)


@pytest.mark.parametrize("pieces", [
    [THINK, "The user", " greets me.", END_THINK, RESPONSE, "Hello", " there", END_RESPONSE, END],
    ["<|open|>", "think", "<|sep|>", "The user greets me.", "<|close|>", "think", "<|sep|>", "<|open|>", "response",
     "<|sep|>", "Hello there", "<|close|>", "response", "<|sep|>"],
], ids=["tokens whole", "tokens split"])
def test_both_channels_stream_as_they_come(pieces: list[str]) -> None:
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    fed = [e for p in pieces for e in sr.feed(p)]
    assert "".join(e.text for e in fed if isinstance(e, ReasoningDelta)) == "The user greets me."
    assert "".join(e.text for e in fed if isinstance(e, ContentDelta)) == "Hello there"
    assert sr.finish() == []


def test_the_channel_syntax_shown_or_mid_line_stays_text() -> None:
    shown = f"{THINK}x{END_THINK}{RESPONSE}y{END_RESPONSE}{END}"
    prefilled = f"Thought.{END_THINK}{RESPONSE}Answer."  # the prompt opened the think channel: not this text
    for text in (f"K3 writes `{shown}` for an answer.", f"K3 writes:\n```\n{shown}\n```\nfor an answer.",
                 f"Reasoning opens with {THINK} and ends with {END_THINK} in the raw text."):
        r = repair_message(text, TOOLS)
        assert (r.content, r.reasoning_content) == (text, None)
        _matches(text)
    r = repair_message(prefilled, TOOLS)
    assert (r.content, r.reasoning_content) == (f"Thought.{END_THINK}\n\nAnswer.", None)
    _matches(prefilled)


@pytest.mark.parametrize("cut", range(1, len(END_THINK)))
def test_a_think_channel_close_cut_anywhere_is_not_reasoning(cut: int) -> None:
    """Its close holds a `<` of its own, where a candidate may begin: a cut past it still holds the whole close."""
    text = f"{THINK}Thinking{END_THINK}{RESPONSE}Answer{END_RESPONSE}"
    at = len(THINK) + len("Thinking") + cut
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    events = sr.feed(text[:at]) + sr.feed(text[at:]) + sr.finish()
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Thinking"
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Answer"
