"""Hunyuan-A13B writes `<think>\n...\n</think>\n<answer>\n...\n</answer>`: the answer tags leave the content, as
vLLM's `hunyuan_a13b` reasoning parser takes them out, when they wrap the whole answer right after the think block
(an `<answer>` anywhere else, in prose, in code or with text after its close, stays as written)."""

from __future__ import annotations

import pytest

from repair import ContentDelta, ReasoningDelta, StreamRepairer, repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
CALLS = '<tool_calls>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</tool_calls>'


def _both(text: str, tools: list[dict] = TOOLS) -> None:
    assert_stream_matches(text, tools, seed=7)
    assert_incremental_matches(text, tools, seed=7)


@pytest.mark.parametrize("tools", [TOOLS, []], ids=["tools", "no tools"])
def test_the_answer_tags_leave_the_content(tools: list[dict]) -> None:
    text = "<think>\nA greeting.\n</think>\n<answer>\nHello! How can I help?\n</answer>"
    r = repair_message(text, tools, id_factory=ids)
    assert (r.content, r.reasoning_content, r.tool_calls) == ("Hello! How can I help?", "A greeting.", [])
    _both(text, tools)


def test_fast_thinking_leaves_only_the_answer() -> None:
    text = "<think>\n\n</think>\n<answer>\nParis is the capital of France.\n</answer>"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert (r.content, r.reasoning_content) == ("Paris is the capital of France.", None)
    _both(text)


def test_calls_in_the_answer_leave_no_tags_behind() -> None:
    text = f"<think>\nNeeds the weather tool.\n</think>\n<answer>\n{CALLS}\n</answer>"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert (r.content, r.reasoning_content, r.errors) == (None, "Needs the weather tool.", [])
    _both(text)
    text = f"<think>\nplan\n</think>\n<answer>\nLet me check.\n{CALLS}\n</answer>"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})] and r.content == "Let me check."
    _both(text)


@pytest.mark.parametrize("text", [
    "Wrap the result in <answer>\n</answer> tags.",
    "<answer>\n42\n</answer>",  # no think block before it: a format the client asked for, kept
    "<think>\nplan\n</think>\nThe tags are:\n<answer>\n42\n</answer>",  # not the whole answer
    "<think>\nplan\n</think>\n`<answer>`\n42\n</answer>",
    "<think>\nplan\n</think>\n```\n<answer>\n42\n</answer>\n```",
], ids=["prose", "no think", "mid answer", "inline code", "fenced"])
def test_answer_tags_anywhere_else_stay(text: str) -> None:
    r = repair_message(text, TOOLS, id_factory=ids)
    assert "<answer>" in (r.content or "") and "</answer>" in (r.content or "")
    _both(text)


def test_a_close_with_text_after_it_stays() -> None:
    """The opener right after the think block is Hunyuan's (vLLM's parser drops it on sight, and a stream sends the
    answer on as it comes); a close that is not the answer's end is text."""
    text = "<think>\nplan\n</think>\n<answer>\n42\n</answer>\nand more text after it."
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.content == "42\n</answer>\nand more text after it."
    _both(text)


def test_the_answer_streams_as_it_comes() -> None:
    pieces = ["<think>", "\n", "A greeting.", "\n", "</think>", "\n", "<answer>", "\n", "Hello", "!", " How", " can",
              " I help?", "\n", "</answer>"]
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    fed = [e for p in pieces for e in sr.feed(p)]
    assert "".join(e.text for e in fed if isinstance(e, ReasoningDelta)) == "A greeting."
    assert "".join(e.text for e in fed if isinstance(e, ContentDelta)) == "Hello! How can I help?"
    assert sr.finish() == [] and sr.result.content == "Hello! How can I help?"
