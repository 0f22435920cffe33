"""Seed-OSS's `<seed:think>...</seed:think>` streams as reasoning while it is generated (incremental mode), as a
`<think>` block does, and the answer after it as content: its markers never reach the client, even cut across
deltas, and for every way of cutting the text into deltas the client's answer (content, reasoning, calls) is the
one-shot answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair import ContentDelta, ReasoningDelta, StreamRepairer, repair_message
from repair.incremental import ToolArgsDelta, ToolCallStart
from tests.repair.helpers import calls_of, ids
from tests.repair.incremental_helpers import (
    assert_every_split_matches,
    assert_sized_stream_matches,
    live,
    text_of,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
SEED_CALL = ("<seed:tool_call>\n<function=get_weather>\n<parameter=location>Paris</parameter>\n</function>\n"
             "</seed:tool_call>")
HERMES_CALL = '<tool_call>{"name": "get_weather", "arguments": {"location": "Oslo"}}</tool_call>'
THOUGHT = "The user wants the weather. " + "I weigh it once more. " * 12


def _live(pieces: list[str], tools: Any = TOOLS, **opts: Any) -> tuple[list[Any], list[Any]]:
    return live(pieces, tools, **opts)


def _every_split(text: str, tools: Any = TOOLS, **opts: Any) -> Any:
    return assert_every_split_matches(text, tools, 17, **opts)


def test_the_thought_goes_out_piece_by_piece() -> None:
    pieces = ["<seed:think>"] + [w + " " for w in THOUGHT.split(" ")]
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    sizes = []
    for p in pieces:
        sr.feed(p)
        sizes.append(len("".join(sr._reasoning_out)))
    assert sizes[len(pieces) // 2] > len(THOUGHT) // 3  # half of it is out halfway through
    out = sr.feed("</seed:think>")
    assert text_of(out, ReasoningDelta) == ""
    assert text_of(sr.feed("It is sunny."), ContentDelta) == "It is sunny."
    assert sr.finish() == [] and sr.result.reasoning_content == THOUGHT.strip()
    assert sr.result.content == "It is sunny."


@pytest.mark.parametrize("pieces", [
    ["<seed:think>", "The user", " greets me.", "</seed:think>", "Hello", " there"],
    ["<se", "ed:thi", "nk>The user greets me.</seed:th", "ink>Hel", "lo there"],
    ["<seed:think>The user greets me.<", "/", "seed:think", ">", "Hello there"],
    ["Intro. <seed:", "think>\nThe user greets me.\n</seed:think>\n\nHello there"],
], ids=["tokens whole", "markers cut", "close cut in pieces", "after prose"])
def test_thought_then_answer_stream_as_they_come(pieces: list[str]) -> None:
    fed, rest = _live(pieces)
    assert text_of(fed, ReasoningDelta) == "The user greets me."
    content = text_of(fed, ContentDelta)
    assert content.endswith("Hello there") and rest == []
    assert "seed" not in content and "<" not in content + text_of(fed, ReasoningDelta)
    r = _every_split("".join(pieces))
    assert r.reasoning_content == "The user greets me." and r.content == content


def test_a_thought_never_closed_is_all_reasoning() -> None:
    text = "Intro.\n<seed:think>" + THOUGHT
    r = _every_split(text)
    assert (r.content, r.reasoning_content) == ("Intro.", THOUGHT.strip())
    fed, rest = _live(list(text))
    assert text_of(fed, ReasoningDelta) == THOUGHT.strip() and rest == []


@pytest.mark.parametrize("call", [SEED_CALL, HERMES_CALL], ids=["seed_oss", "hermes"])
def test_a_call_after_the_thought_is_a_call(call: str) -> None:
    text = "<seed:think>" + THOUGHT + "</seed:think>Checking.\n" + call
    r = _every_split(text)
    assert len(calls_of(r)) == 1 and r.reasoning_content == THOUGHT.strip() and r.content == "Checking."
    fed, _ = _live(list(text))
    assert text_of(fed, ReasoningDelta) == THOUGHT.strip() and text_of(fed, ContentDelta) == "Checking."
    if call == HERMES_CALL:  # its header and arguments stream as they do after a <think> block
        assert any(isinstance(e, ToolCallStart) for e in fed) and any(isinstance(e, ToolArgsDelta) for e in fed)


def test_a_call_in_the_thought_that_may_be_made_holds_the_rest() -> None:
    """Its markup leaves the reasoning when no call is made outside the block: the stream cannot know that until
    its end (as in a <think> block)."""
    text = "<seed:think>I will call it: " + SEED_CALL + " and then answer.</seed:think>Done."
    r = _every_split(text)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert "seed:tool_call" not in (r.reasoning_content or "")
    fed, _ = _live(list(text))
    assert text_of(fed, ReasoningDelta) == "I will call it:" and text_of(fed, ContentDelta) == ""
    outside = text + "\n" + HERMES_CALL
    r = _every_split(outside)
    assert calls_of(r) == [("get_weather", {"location": "Oslo"})] and SEED_CALL in (r.reasoning_content or "")


@pytest.mark.parametrize("text", [
    "<seed:think>I will write <tool_call> with the JSON.</seed:think>Sunny.",
    "<seed:think>a</seed:think><seed:think>b</seed:think>c",
    "<seed:think></seed:think>",
    "<seed:think>  \n </seed:think>   \n  Sunny.  ",
    "Sunny.<seed:think>afterthought",
    "`<seed:think>` is the tag.\n<seed:think>x</seed:think>y",
    "```\n<seed:think>x</seed:think>\n```\nafter",
    "<think>\n<seed:think>inner</seed:think>\n</think>\nafter",
    "<seed:think>x <think>\ny</think> z</seed:think>w",
    "<seed:think>x</think>y</seed:think>z",
    "<seed:think>Budget: <seed:cot_budget_reflect>12 used</seed:cot_budget_reflect> go</seed:think>Sunny.",
    "<seed:think>x</seed:think>```\n" + HERMES_CALL + "\n```",
    "<seed:think>x</seed:think>`a` " + HERMES_CALL,
], ids=["tag text", "two blocks", "empty", "blank", "after content", "quoted tag", "fenced", "inside think",
        "think inside", "other close", "budget tag", "fence after", "code span after"])
def test_every_split_gives_the_one_shot_answer(text: str) -> None:
    _every_split(text)
    _every_split(text, None)
    _every_split(text, TOOLS, tool_choice="none")


FRAGMENTS = ["<seed:think>", "</seed:think>", "<seed:", "think>", "<think>", "</think>", "\n", " ", "Plan", "x",
             "<tool_call>", "</tool_call>", '{"name": "get_weather", "arguments": {"location": "Oslo"}}',
             '{"name": "nope", "arguments": {}}', "<seed:tool_call>", "</seed:tool_call>",
             "<function=get_weather>", "<parameter=location>", "Rome", "</parameter>", "</function>", "<tools>",
             "`", "```", "<|START_THINKING|>", "<|END_THINKING|>", "<|channel>thought\n", "<channel|>"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=16).map("".join),
       st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20), st.booleans(),
       st.sampled_from([None, "none", "required"]))
def test_any_seed_think_text_streams_as_the_one_shot_answer(text: str, sizes: list[int], with_tools: bool,
                                                            choice: str | None) -> None:
    assert_sized_stream_matches(text, sizes, TOOLS if with_tools else None, choice)


def test_without_incremental_calls_the_block_is_held_as_before() -> None:
    """Models configured to buffer calls (`on_failure: retry` or `error`) hold the block with the rest, as a
    <think> block is."""
    text = "<seed:think>" + THOUGHT + "</seed:think>Sunny."
    sr = StreamRepairer(TOOLS, id_factory=ids)
    fed = [e for ch in text for e in sr.feed(ch)]
    assert fed == [] and text_of(sr.finish(), ReasoningDelta) == THOUGHT.strip()
    assert repair_message(text, TOOLS).reasoning_content == THOUGHT.strip()


def test_the_arguments_of_a_call_after_the_block_are_the_one_shot_ones() -> None:
    text = "<seed:think>x</seed:think>" + HERMES_CALL
    fed, rest = _live([text[i:i + 3] for i in range(0, len(text), 3)])
    args = text_of([e for e in fed + rest if isinstance(e, ToolArgsDelta)], ToolArgsDelta)
    assert json.loads(args) == {"location": "Oslo"}
