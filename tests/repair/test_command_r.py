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


# Command R / R+: the completion shape of Cohere's own parser tests (cohere-ai/melody), and the closing fence right
# after the list as ollama's Command R template renders a call
PLAN = ('Plan: I will search for tips on writing an essay.\nAction: ```json\n[\n    {\n        "tool_name": '
        '"web_search",\n        "parameters": {\n            "query": "tips for writing an essay"\n        }\n'
        '    }\n]\n```')


def test_command_r_action_line_and_fence_are_part_of_the_call() -> None:
    r = repair_message(PLAN, TOOLS, id_factory=ids)
    assert calls_of(r) == [("web_search", {"query": "tips for writing an essay"})]
    assert r.content == "Plan: I will search for tips on writing an essay."
    assert r.errors == [] and r.repairs == [] and r.format == "command_r"
    assert_stream_matches(PLAN, TOOLS)


def test_command_r_action_alone_leaves_no_content() -> None:
    text = ('Action: ```json\n[\n    {\n        "tool_name": "get_weather",\n'
            '        "parameters": {"location": "Rome"}\n    }\n]```')
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Rome"})] and r.content is None
    assert_stream_matches(text, TOOLS)


def test_command_r_action_in_a_sentence_stays_text() -> None:
    text = 'It writes Action: ```json [{"tool_name": "web_search", "parameters": {"query": "x"}}]``` at the end.'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert_stream_matches(text, TOOLS)


def test_command_r_directly_answer_undeclared_stays_text() -> None:
    text = ('Plan: I will respond to the user.\nAction: ```json\n[\n    {\n        "tool_name": "directly_answer",\n'
            '        "parameters": {}\n    }\n]\n```')
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text and r.errors == []
    assert_stream_matches(text, TOOLS)
