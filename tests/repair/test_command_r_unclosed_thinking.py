"""Command R7B's plan never closed and followed by its answer (`<|START_THINKING|>plan<|START_RESPONSE|>answer`):
the plan streams as reasoning up to the answer's opener; the answer is held to the stream's end. The one-shot
repair reads the answer as content only when no `<|END_THINKING|>` follows it anywhere later; one that does makes
all of it, the answer's markers included, the plan's text. Both texts share every piece up to that close, so no
piece of the answer can go out as content before the stream ends without some text's streamed answer differing
from its one-shot answer."""

from __future__ import annotations

import pytest

from repair import ContentDelta, ReasoningDelta, repair_message
from tests.repair.incremental_helpers import (
    assert_every_split_matches,
    assert_sized_stream_matches,
    live,
    text_of,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TOOLS = [WEATHER]
THINK, THINK_CLOSE = "<|START_THINKING|>", "<|END_THINKING|>"
OPEN, CLOSE = "<|START_RESPONSE|>", "<|END_RESPONSE|>"
PREFIX = THINK + "No tool is needed." + OPEN + "Paris is sunny today."


def test_a_later_close_of_the_plan_makes_the_answer_its_text() -> None:
    """The same prefix, two readings: which one holds is known only at the end of the text."""
    alone = repair_message(PREFIX, TOOLS)
    assert (alone.reasoning_content, alone.content) == ("No tool is needed.", "Paris is sunny today.")
    for text in (PREFIX + THINK_CLOSE + "After.", PREFIX + CLOSE + THINK_CLOSE + "After."):
        closed = repair_message(text, TOOLS)
        assert closed.content == "After."
        assert closed.reasoning_content == text[len(THINK):text.index(THINK_CLOSE)]


@pytest.mark.parametrize("tail", ["", CLOSE, CLOSE + "\n\nMore.", THINK_CLOSE + "After.",
                                  CLOSE + THINK_CLOSE + "After.",
                                  '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", '
                                  '"parameters": {"location": "Paris"}}]<|END_ACTION|>'],
                         ids=["unclosed", "answer closed", "text after", "plan closed after", "both closed",
                              "action after"])
def test_the_plan_streams_and_the_answer_is_held_to_the_end(tail: str) -> None:
    text = PREFIX + tail
    fed, _ = live(list(PREFIX), TOOLS)
    assert text_of(fed, ReasoningDelta) == "No tool is needed."
    assert text_of(fed, ContentDelta) == ""  # (the answer may yet be the plan's text)
    assert_every_split_matches(text, TOOLS, seed=17)
    for sizes in ([1, 2], [3, 5], [8]):
        assert_sized_stream_matches(text, sizes, TOOLS, strict=True)
