"""Command R7B's answer, `<|START_RESPONSE|> ... <|END_RESPONSE|>`, streams as content while it is generated
(incremental mode), its markers left out even when a delta cuts them; an action after it is still the calls, and a
response cut short or never closed gives the one-shot answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair import ContentDelta, ReasoningDelta, StreamRepairer, repair_message
from repair.incremental import ToolCallStart
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import (
    assert_incremental_matches,
    assert_sized_stream_matches,
    expected,
    stream_incremental,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
THINK = ("<|START_THINKING|>", "<|END_THINKING|>")
OPEN, CLOSE = "<|START_RESPONSE|>", "<|END_RESPONSE|>"
ACTION = ('<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": '
          '{"location": "Paris"}}]<|END_ACTION|>')
ANSWER = "Paris is sunny today. " + "It stays warm all week. " * 10


def _live(pieces: list[str], tools: Any = TOOLS) -> tuple[list[Any], list[Any]]:
    """The events while the pieces are fed, and those of finish()."""
    sr = StreamRepairer(tools, id_factory=ids, incremental=True)
    fed = [e for p in pieces for e in sr.feed(p)]
    return fed, sr.finish()


def _text(events: list[Any], kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def _every_split(text: str, tools: Any = TOOLS) -> None:
    """The stream's answer is the one-shot answer for the text cut in two at every offset, in three pieces at
    pairs of offsets near the markers, and in the helpers' 1-character and random pieces."""
    assert_stream_matches(text, tools, seed=11)
    assert_incremental_matches(text, tools, seed=11)
    r, calls = expected(text, tools)
    cuts = [[text[:i], text[i:]] for i in range(1, len(text))]
    edges = sorted({i for m in (OPEN, CLOSE, "<|START_ACTION|>") for at in _all(text, m)
                    for i in range(at, at + len(m) + 1)})
    cuts += [[text[:i], text[i:j], text[j:]] for i in edges for j in edges if 0 < i < j < len(text)]
    for pieces in cuts:
        sr, got = stream_incremental(pieces, tools)
        assert not sr.after_header
        assert (got.content, got.reasoning, got.call_list()) == (r.content or "", r.reasoning_content or "",
                                                                 calls), pieces


def _all(text: str, marker: str) -> list[int]:
    out, at = [], text.find(marker)
    while at != -1:
        out.append(at)
        at = text.find(marker, at + 1)
    return out


def test_the_answer_goes_out_piece_by_piece() -> None:
    pieces = [OPEN] + [w + " " for w in ANSWER.split(" ")]
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    sizes = []
    for p in pieces:
        sr.feed(p)
        sizes.append(sr._emitted)
    assert sizes[len(pieces) // 2] > len(ANSWER) // 3  # half of it is out halfway through
    sr.feed(CLOSE)
    assert sr.finish() == [] and sr.result.content == ANSWER.strip()


@pytest.mark.parametrize("pieces", [
    [THINK[0], "No tool", " is needed.", THINK[1], OPEN, "Hello", " there", CLOSE],
    ["<|START_THINK", "ING|>No tool is needed.<|END_TH", "INKING|><|START_RESP", "ONSE|>Hello", " there<|END_",
     "RESPONSE|>"],
    ["<", "|", "START_THINKING|>No tool is needed.<|END_THINKING|>", "<", "|START_RESPONSE|", ">", "Hello there<",
     "|END_RESPONSE", "|>"],
], ids=["tokens whole", "markers cut", "markers cut finely"])
def test_thinking_then_answer_stream_as_they_come(pieces: list[str]) -> None:
    fed, rest = _live(pieces)
    assert _text(fed, ReasoningDelta) == "No tool is needed."
    assert _text(fed, ContentDelta) == "Hello there" and rest == []
    _every_split("".join(pieces))


def test_the_markers_never_reach_the_client() -> None:
    text = THINK[0] + "Plan." + THINK[1] + OPEN + ANSWER + CLOSE
    fed, rest = _live(list(text))
    assert "<|" not in _text(fed, ContentDelta) and "|>" not in _text(fed, ContentDelta)
    assert _text(fed, ContentDelta) == ANSWER.strip() and rest == []


def test_an_action_after_the_answer_is_still_the_call() -> None:
    for text in (OPEN + ANSWER + CLOSE + ACTION, OPEN + ANSWER + ACTION):  # closed, and never closed
        r = repair_message(text, TOOLS, id_factory=ids)
        assert calls_of(r) == [("get_weather", {"location": "Paris"})] and r.content == ANSWER.strip()
        fed, rest = _live(list(text))
        assert _text(fed, ContentDelta) == ANSWER.strip()
        assert [e.name for e in rest if hasattr(e, "name")] == ["get_weather"]
        _every_split(text)


def test_an_action_inside_a_closed_answer_is_its_text() -> None:
    """The answer runs to its close: an action written before it is the answer's text, as the one-shot repair
    reads it (the stream cannot tell until the close comes, so from the action on it is held)."""
    text = OPEN + "Use " + ACTION + " like this." + CLOSE
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == "Use " + ACTION + " like this."
    fed, _ = _live(list(text))
    assert _text(fed, ContentDelta) == "Use"
    _every_split(text)


@pytest.mark.parametrize("text", [
    OPEN + "Paris is sunny.",  # never closed: the rest of the text is the answer
    OPEN + "Paris is sunny.\n\n  ",
    OPEN + "Paris is sunny.<|END_RESP",  # cut inside its close
    OPEN + "Paris is sunny.<|START_ACT",  # cut inside an action's opener
    OPEN + "Paris is sunny." + ACTION[:40],  # an action cut off
    OPEN,
    OPEN + CLOSE + "After.",
    OPEN + "  \n  " + CLOSE,
], ids=["unclosed", "unclosed trailing space", "close cut", "action opener cut", "action cut", "opener only",
        "empty then text", "blank"])
def test_a_cut_or_unclosed_answer_gives_the_one_shot_answer(text: str) -> None:
    _every_split(text)


@pytest.mark.parametrize("text", [
    "Intro.\n" + OPEN + "Hello there." + CLOSE,
    "Intro.  " + OPEN + "\n\n    indented code\n" + CLOSE + "\n\nAfter.",
    OPEN + "One." + CLOSE + OPEN + "Two." + CLOSE,
    OPEN + "`code" + CLOSE + ' <tool_call>{"name": "get_weather", "arguments": {"location": "Oslo"}}</tool_call>`',
    OPEN + "```\n" + CLOSE + '<tool_call>{"name": "get_weather", "arguments": {"location": "Oslo"}}</tool_call>',
    THINK[0] + "Plan." + THINK[1] + "\n" + OPEN + "Answer." + CLOSE + "\n" + ACTION,
], ids=["after prose", "indented, text after", "two answers", "code span open", "fence open",
        "thinking, answer, action"])
def test_the_answer_among_other_text_gives_the_one_shot_answer(text: str) -> None:
    _every_split(text)


def test_the_answer_streams_without_tools_and_under_tool_choice_none() -> None:
    text = OPEN + ANSWER + CLOSE
    fed, rest = _live(list(text), None)
    assert _text(fed, ContentDelta) == ANSWER.strip() and rest == []
    _every_split(text, None)
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True, tool_choice="none")
    assert _text([e for ch in text + ACTION for e in sr.feed(ch)], ContentDelta) == ANSWER.strip()


def test_past_the_bound_the_answer_goes_on_as_content() -> None:
    text = OPEN + ANSWER + CLOSE + " tail"
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True, max_chars=60)
    out = [e for ch in text for e in sr.feed(ch)] + sr.finish()
    assert not any(isinstance(e, ToolCallStart) for e in out)
    assert _text(out, ContentDelta).split() == (ANSWER + " tail").split()


FRAGMENTS = [OPEN, CLOSE, THINK[0], THINK[1], ACTION, ACTION[:30], "<|START_ACTION|>", "<|END_ACTION|>", "<|",
             "|>", "Hello", " ", "\n", "\n\n", "  ", "`", "```", "<think>", "</think>", "<tool_call>",
             '{"name": "get_weather", "arguments": {"location": "Oslo"}}', "</tool_call>", "x"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join),
       st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20), st.booleans())
def test_any_answer_text_streams_as_the_one_shot_answer(text: str, sizes: list[int], with_tools: bool) -> None:
    assert_sized_stream_matches(text, sizes, TOOLS if with_tools else None, strict=True)
