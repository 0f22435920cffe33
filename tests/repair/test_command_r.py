"""Cohere Command models: Command R7B's `<|START_ACTION|>[...]<|END_ACTION|>` calls with its thinking plan as
reasoning, and Command R / R+'s `Action: ```json [...] ```` calls, the `Action:` line and its fence part of the
call; neither read where the syntax is only shown."""

from __future__ import annotations

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
SEARCH = {"type": "function", "function": {"name": "web_search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
TOOLS = [WEATHER, SEARCH]

R7B = ('<|START_THINKING|>I will look up the weather in Paris.<|END_THINKING|><|START_ACTION|>[\n'
       '    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Paris"}}\n'
       ']<|END_ACTION|>')


def test_r7b_action_is_calls_and_its_plan_is_reasoning() -> None:
    r = repair_message(R7B, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert r.content is None and r.errors == [] and r.repairs == []
    assert r.reasoning_content == "I will look up the weather in Paris."
    assert r.format == "command_r"
    assert_stream_matches(R7B, TOOLS)


def test_r7b_parallel_calls_in_one_action() -> None:
    text = ('<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Oslo"}},'
            ' {"tool_call_id": "1", "tool_name": "web_search", "parameters": {"query": "Oslo news"}}]<|END_ACTION|>')
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Oslo"}), ("web_search", {"query": "Oslo news"})]
    assert r.content is None
    assert_stream_matches(text, TOOLS)


def test_r7b_response_is_content() -> None:
    text = "<|START_THINKING|>No tool is needed.<|END_THINKING|><|START_RESPONSE|>Hello there!<|END_RESPONSE|>"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == "Hello there!"
    assert r.reasoning_content == "No tool is needed."
    assert_stream_matches(text, TOOLS)


def test_r7b_action_cut_off_is_truncated_and_kept() -> None:
    text = '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Pa'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert [e.kind for e in r.errors] == ["truncated"]
    assert_stream_matches(text, TOOLS)


def test_r7b_undeclared_tool_is_no_call() -> None:
    text = '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "directly_answer", "parameters": {}}]<|END_ACTION|>'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert [e.kind for e in r.errors] == ["unknown_name"]
    assert_stream_matches(text, TOOLS)
