"""Gemma 4's thinking channel, `<|channel>thought\n...<channel|>`, is reasoning as a `<think>` block is (its
`thought` label dropped, as vLLM's Gemma 4 reasoning parser drops it); a call after it is read as before."""

from __future__ import annotations

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
CALL = '<|tool_call>call:get_weather{location:<|"|>Paris<|"|>}<tool_call|>'


def test_thought_channel_is_reasoning_and_the_call_is_read() -> None:
    text = "<|channel>thought\nThe user wants the weather in Paris.\nI will call the tool.<channel|>" + CALL
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert r.reasoning_content == "The user wants the weather in Paris.\nI will call the tool."
    assert r.content is None and r.errors == []
    assert_stream_matches(text, TOOLS)


def test_thought_channel_before_an_answer() -> None:
    text = "<|channel>thought\nA greeting; no tool needed.<channel|>Hello! How can I help?"
    for tools in (TOOLS, []):
        r = repair_message(text, tools, id_factory=ids)
        assert r.reasoning_content == "A greeting; no tool needed." and r.content == "Hello! How can I help?"
        assert_stream_matches(text, tools)


def test_empty_thought_channel_leaves_only_the_answer() -> None:
    text = "<|channel>thought\n<channel|>The answer is 42."
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.reasoning_content is None and r.content == "The answer is 42."
    assert_stream_matches(text, TOOLS)


def test_unclosed_thought_channel_ends_at_the_call() -> None:
    text = "<|channel>thought\nCalling the weather tool." + CALL
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert r.reasoning_content == "Calling the weather tool." and r.content is None
    assert_stream_matches(text, TOOLS)


def test_channel_marker_in_inline_code_stays_text() -> None:
    text = "Gemma 4 opens its reasoning with `<|channel>thought` and closes it with `<channel|>`."
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.content == text and r.reasoning_content is None
    assert_stream_matches(text, TOOLS)


def test_a_call_inside_the_channel_is_still_read() -> None:
    text = "<|channel>thought\nChecking." + CALL + "Done.<channel|>It is sunny."
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert r.reasoning_content == "Checking."
    assert_stream_matches(text, TOOLS)
