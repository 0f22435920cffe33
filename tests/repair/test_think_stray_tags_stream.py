"""Tag text inside a `<think>` block that is no call (a model reasoning about the markup it will write, an
`<answer>` it plans) does not hold the rest of the stream (incremental mode): the block's reasoning goes on and the
answer after it streams as it comes, wherever that cannot change the one-shot answer. A call in the block that may
yet be made (it is made when none is made outside the block) and a channel marker whose markup the one-shot repair
removes still hold the rest to the end, as before."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair import ContentDelta, ReasoningDelta, StreamRepairer, repair_message
from repair.incremental import ToolCallStart
from tests.repair.helpers import calls_of, ids
from tests.repair.incremental_helpers import (
    assert_every_split_matches,
    assert_sized_stream_matches,
    expected,
    live,
    stream_incremental,
    text_of,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
CALL = '<tool_call>{"name": "get_weather", "arguments": {"location": "Paris"}}</tool_call>'
AFTER = " More thought after it, " + "and more of it " * 8 + "\n</think>\n\nThe answer is sunny."


def _live(pieces: list[str], tools: Any = TOOLS, **opts: Any) -> tuple[list[Any], list[Any]]:
    return live(pieces, tools, **opts)


def _every_split(text: str, tools: Any = TOOLS, **opts: Any) -> Any:
    return assert_every_split_matches(text, tools, 13, **opts)


def _goes_on(tag: str, tools: Any = TOOLS, **opts: Any) -> None:
    """With `tag` in the block, the whole reasoning and the answer went out before the stream's end."""
    text = "<think>\nFirst I plan. " + tag + AFTER
    r = repair_message(text, tools, id_factory=ids, **opts)
    assert r.content == "The answer is sunny." and r.tool_calls == []
    assert tag.strip() in (r.reasoning_content or "")
    for pieces in (list(text), [text[i:i + 7] for i in range(0, len(text), 7)]):
        fed, rest = _live(pieces, tools, **opts)
        assert text_of(fed, ReasoningDelta) == r.reasoning_content
        assert text_of(fed, ContentDelta) == "The answer is sunny." and rest == []
    _every_split(text, tools, **opts)


@pytest.mark.parametrize("tag", ["<answer>42</answer>", "\n<answer>\n42\n</answer>\n", "<answer>"])
def test_answer_tags_in_the_block_stream_through(tag: str) -> None:
    _goes_on(tag)


@pytest.mark.parametrize("tag", [
    "I will write <tool_call> with the JSON.",
    "<tool_call>hello</tool_call>",
    "<tools> is where they go.",
    "The call starts with <function=",
    "<function=lookup>{}</function>",  # a tool that is not declared
    '<tool_call>{"name": "delete_all", "arguments": {}}</tool_call>',
    "[TOOL_CALLS] comes first.",
    "<|python_tag|> then JSON.",
    "<tool_calls> and </tool_calls>",
    "Then <function_calls> closes.",
    "<｜tool▁calls▁begin｜> in DeepSeek.",
    '<tool_call>{"name": "get_weather", "arguments": {"location": "Paris"}',  # cut off: never a call
], ids=["hermes in prose", "hermes with a word", "tools", "qwen opener", "undeclared qwen call",
        "undeclared hermes call", "mistral", "llama3", "tool_calls", "function_calls", "deepseek", "cut call"])
def test_tag_text_that_is_no_call_lets_the_stream_go_on(tag: str) -> None:
    _goes_on(tag)


def test_the_rest_of_the_reasoning_goes_out_when_the_block_closes() -> None:
    """From the tag on the block is held until its close (a call in it could still be completed and made), then
    it goes out whole, before the answer comes."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    sr.feed("<think>\nPlan. I will write <tool_call> with the JSON")
    sr.feed(" later.\n")
    out = sr.feed("</think>\n")
    assert text_of(out, ReasoningDelta) == " <tool_call> with the JSON later."
    assert text_of(sr.feed("Sunny."), ContentDelta) == "Sunny."
    assert sr.finish() == [] and sr.result.reasoning_content == "Plan. I will write <tool_call> with the JSON later."


def test_a_call_in_the_block_that_may_be_made_holds_the_rest() -> None:
    """Its markup leaves the reasoning when no call is made outside the block: the stream cannot know that until
    its end."""
    alone = "<think>\nI will call it: " + CALL + AFTER
    r = _every_split_result(alone)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert CALL not in (r.reasoning_content or "")
    fed, _ = _live(list(alone))
    assert text_of(fed, ContentDelta) == ""
    outside = alone + "\n" + CALL.replace("Paris", "Oslo")
    r = _every_split_result(outside)
    assert calls_of(r) == [("get_weather", {"location": "Oslo"})] and CALL in (r.reasoning_content or "")


def _every_split_result(text: str) -> Any:
    _every_split(text)
    return repair_message(text, TOOLS, id_factory=ids)


@pytest.mark.parametrize("tag", ["<|START_RESPONSE|>an answer", "<|START_THINKING|>x<|END_THINKING|>",
                                 "<|channel>thought\nx<channel|>"], ids=["command answer", "command thinking",
                                                                          "gemma thought"])
def test_a_channel_the_one_shot_repair_removes_holds_the_rest(tag: str) -> None:
    text = "<think>\nPlan. " + tag + AFTER
    r = repair_message(text, TOOLS, id_factory=ids)
    assert tag not in (r.reasoning_content or "")
    _every_split(text)


@pytest.mark.parametrize("opts", [{"tools": None}, {"tools": TOOLS, "tool_choice": "none"},
                                  {"tools": TOOLS, "tool_choice": {"type": "function",
                                                                   "function": {"name": "get_time"}}}],
                         ids=["no tools", "tool_choice none", "another tool named"])
def test_a_call_that_cannot_be_made_lets_the_stream_go_on(opts: dict[str, Any]) -> None:
    tools = opts.pop("tools")
    if tools is not None:
        tools = [*tools, {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    _goes_on(CALL, tools, **opts)


def test_a_call_whose_arguments_its_schema_refuses_still_holds_the_rest() -> None:
    """Whether arguments validate may rest on a repair the message's budget allows or not (the one-shot repair
    decides it once the whole text is read): held, as before."""
    text = "<think>\nPlan. " + CALL.replace('"location": "Paris"', '"place": "Paris"') + AFTER
    _every_split(text)


def test_past_the_bound_the_held_block_goes_out_as_reasoning() -> None:
    text = "<think>\nPlan. I will write <tool_call> with it." + " More." * 20 + "\n</think>\nSunny."
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True, max_chars=60)
    out = [e for ch in text for e in sr.feed(ch)] + sr.finish()
    assert not any(isinstance(e, ToolCallStart) for e in out)
    assert "".join(text_of(out, ReasoningDelta).split()) == "".join(text[8:text.index("</think>")].split())
    assert text_of(out, ContentDelta).strip() == "Sunny."


def test_past_the_candidates_one_message_examines_the_text_stays_as_the_one_shot_repair_leaves_it() -> None:
    """The one-shot repair examines at most 512 candidates in a message: a block full of tags uses them up, and
    a <think> or a call after it is then text. The stream counts them as it goes and holds what follows."""
    for many in (510, 511, 512, 600):
        text = "<think>\n" + "<tools> " * many + "\n</think>\n<think>\nb\n</think>\nx " + CALL
        r = repair_message(text, TOOLS, id_factory=ids)
        sr, got = stream_incremental([text[i:i + 50] for i in range(0, len(text), 50)], TOOLS)
        assert not sr.after_header
        _, calls = expected(text, TOOLS)
        assert (got.content, got.reasoning, got.call_list()) == (r.content or "", r.reasoning_content or "",
                                                                 calls), many


FRAGMENTS = ["<think>", "</think>", "\n", " ", "Plan", "<answer>", "</answer>", "<tool_call>", "</tool_call>",
             '{"name": "get_weather", "arguments": {"location": "Oslo"}}', '{"name": "nope", "arguments": {}}',
             '{"name": "get_weather", "arguments": {}}', "<tools>", "<function=", "get_weather>", "</function>",
             "<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_THINKING|>", "<|END_THINKING|>", "`", "```",
             "[TOOL_CALLS]", "<|channel>thought\n", "<channel|>", "x"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=16).map("".join),
       st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20), st.booleans(),
       st.sampled_from([None, "none", "required"]))
def test_any_think_text_streams_as_the_one_shot_answer(text: str, sizes: list[int], with_tools: bool,
                                                       choice: str | None) -> None:
    assert_sized_stream_matches(text, sizes, TOOLS if with_tools else None, choice)


def _calls(names: list[str]) -> str:
    return "\n".join(f'<tool_call>{{"name": "{n}", "arguments": {{"location": "L{i}"}}}}</tool_call>'
                     for i, n in enumerate(names))


@pytest.mark.parametrize(("inside", "outside"), [(60, 10), (0, 70)], ids=["calls in the block", "calls alone"])
def test_a_stream_starts_no_call_past_the_calls_one_message_parses(inside: int, outside: int) -> None:
    """The one-shot repair parses 64 calls in a message, those in a block of thought and those that fail
    included: a call after them is text. The stream starts none past them (the header of a call the answer
    does not have cannot be taken back)."""
    think = "<think>\n" + _calls(["delete_all"] * inside) + "\n</think>\n" if inside else ""
    text = think + _calls(["nope"] + ["get_weather"] * (outside - 1))
    r, calls = expected(text, TOOLS)
    assert len(calls) == 64 - inside - 1
    for size in (1, 9, 60):
        sr, got = stream_incremental([text[i:i + size] for i in range(0, len(text), size)], TOOLS)
        assert not sr.after_header
        assert (got.content, got.reasoning, got.call_list()) == (r.content or "", r.reasoning_content or "", calls)
