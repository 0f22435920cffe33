"""Gemma 4's `<|channel>thought ... <channel|>` and Command R7B's `<|START_THINKING|> ... <|END_THINKING|>` stream
as reasoning while they are generated (incremental mode), as a `<think>` block does: a marker cut across chunks, a
thought never closed and a call after it give the one-shot answer."""

from __future__ import annotations

from typing import Any

import pytest

from repair import ContentDelta, ReasoningDelta, StreamRepairer, repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
GEMMA_CALL = '<|tool_call>call:get_weather{location:<|"|>Paris<|"|>}<tool_call|>'
R7B_CALL = ('<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": '
            '{"location": "Paris"}}]<|END_ACTION|>')
THOUGHT = "The user wants the weather. " + "I weigh it once more. " * 12


def _both(text: str) -> Any:
    assert_incremental_matches(text, TOOLS, seed=5)
    return assert_stream_matches(text, TOOLS, seed=5)


def _live(pieces: list[str]) -> tuple[list[Any], list[Any]]:
    """The events while the pieces are fed, and those of finish()."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    fed = [e for p in pieces for e in sr.feed(p)]
    return fed, sr.finish()


def _text(events: list[Any], kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


GEMMA = ("<|channel>thought\n", "<channel|>")
R7B = ("<|START_THINKING|>", "<|END_THINKING|>")


@pytest.mark.parametrize(("opener", "close"), [GEMMA, R7B], ids=["gemma4", "command_r7b"])
def test_the_thought_goes_out_piece_by_piece(opener: str, close: str) -> None:
    words = THOUGHT.split(" ")
    pieces = [opener] + [w + " " for w in words]
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    sizes = []
    for p in pieces:
        sr.feed(p)
        sizes.append(len("".join(sr._reasoning_out)))
    assert sizes[len(pieces) // 2] > len(THOUGHT) // 3  # half of it is out halfway through
    sr.feed(close)
    assert sr.finish() == [] and sr.result.reasoning_content == THOUGHT.strip()


@pytest.mark.parametrize("pieces", [
    ["<|channel>", "thought", "\n", "The user", " greets me.", "<channel|>", "Hello", " there"],
    ["<|", "channel>th", "ought\nThe user greets me.<chan", "nel|>Hello there"],
], ids=["tokens whole", "markers cut"])
def test_gemma4_thought_then_answer_stream_as_they_come(pieces: list[str]) -> None:
    fed, rest = _live(pieces)
    assert _text(fed, ReasoningDelta) == "The user greets me."
    assert _text(fed, ContentDelta) == "Hello there" and rest == []
    _both("".join(pieces))


@pytest.mark.parametrize("pieces", [
    ["<|START_THINKING|>", "No tool", " is needed.", "<|END_THINKING|>", "Hello", " there"],
    ["<|START_THINK", "ING|>No tool is needed.<|END_TH", "INKING|>Hello there"],
], ids=["tokens whole", "markers cut"])
def test_command_r7b_thinking_then_text_stream_as_they_come(pieces: list[str]) -> None:
    fed, rest = _live(pieces)
    assert _text(fed, ReasoningDelta) == "No tool is needed."
    assert _text(fed, ContentDelta) == "Hello there" and rest == []
    _both("".join(pieces))


@pytest.mark.parametrize(("opener", "close", "call"), [(*GEMMA, GEMMA_CALL), (*R7B, R7B_CALL)],
                         ids=["gemma4", "command_r7b"])
def test_a_call_after_the_thought_is_a_call(opener: str, close: str, call: str) -> None:
    for text in (opener + THOUGHT + close + call, opener + THOUGHT + call):  # closed, and never closed
        r = _both(text)
        assert calls_of(r) == [("get_weather", {"location": "Paris"})]
        assert r.reasoning_content == THOUGHT.strip() and r.content is None
        fed, _ = _live(list(text))
        assert _text(fed, ReasoningDelta) == THOUGHT.strip()


@pytest.mark.parametrize(("opener", "close"), [GEMMA, R7B], ids=["gemma4", "command_r7b"])
def test_a_thought_never_closed_is_all_reasoning(opener: str, close: str) -> None:
    text = "Intro.\n" + opener + THOUGHT
    r = _both(text)
    assert (r.content, r.reasoning_content) == ("Intro.", THOUGHT.strip())
    fed, rest = _live(list(text))
    assert _text(fed, ReasoningDelta) == THOUGHT.strip() and rest == []


def test_markup_inside_the_thought_stays_reasoning() -> None:
    """Neither format reads calls inside its thought (a hermes call there is part of the reasoning), so nothing in
    it stops the streaming."""
    inner = 'Maybe <tool_call>{"name": "get_weather", "arguments": {"location": "Rome"}}</tool_call> later.'
    for opener, close in (GEMMA, R7B):
        text = opener + inner + close + "Fine."
        r = repair_message(text, TOOLS, id_factory=ids)
        assert (r.content, r.reasoning_content, r.tool_calls) == ("Fine.", inner, [])
        _both(text)
        fed, _ = _live(list(text))
        assert _text(fed, ReasoningDelta) == inner


def test_another_gemma4_channel_is_held_as_before() -> None:
    text = "<|channel>final\nNot a thought.<channel|>Done."
    r = _both(text)
    assert r.reasoning_content is None
    fed, _ = _live(list(text))
    assert fed == []


def test_a_quoted_marker_stays_text() -> None:
    for text in ("Gemma writes `<|channel>thought` first.", "Cohere: `<|START_THINKING|>` then a plan."):
        r = _both(text)
        assert (r.content, r.reasoning_content) == (text, None)


@pytest.mark.parametrize("after", ["` " + GEMMA_CALL, " " + GEMMA_CALL, "\n" + GEMMA_CALL])
def test_backticks_in_the_thought_are_read_on_as_the_one_shot_repair_reads_them(after: str) -> None:
    """After the channel the one-shot repair reads inline code on through the channel's text (a code span the
    thought's last line opened is still open after its close), and the stream does the same."""
    text = "<|channel>thought\nIt opens with `call:get_weather" + "<channel|>" + after
    _both(text)
