"""`<answer>` tags after a think block are the text's own: a prompt may ask any reasoning model for them
(DeepSeek-R1-Zero's template does), and an XML answer may have `<answer>` as its root. Repair does not know which
model wrote a text, so it keeps them (vLLM takes Hunyuan-A13B's out only where its `hunyuan_a13b` reasoning parser is
configured); a call inside them is still read."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


@pytest.mark.parametrize("answer", ["<answer>\n42\n</answer>", "<answer>42</answer>",
                                    "<answer>\n  <value>42</value>\n</answer>"])
def test_answer_tags_after_a_think_block_stay(answer: str) -> None:
    text = f"<think>\nLet me compute 6*7.\n</think>\n{answer}"
    r = repair_message(text, [WEATHER], id_factory=ids)
    assert (r.content, r.reasoning_content, r.tool_calls) == (answer, "Let me compute 6*7.", [])
    assert_stream_matches(text, [WEATHER], seed=7)
    assert_incremental_matches(text, [WEATHER], seed=7)


def test_a_call_inside_answer_tags_is_read() -> None:
    text = ('<think>\nNeeds the weather tool.\n</think>\n<answer>\n<tool_calls>[{"name": "get_weather", '
            '"arguments": {"location": "Paris"}}]</tool_calls>\n</answer>')
    r = repair_message(text, [WEATHER], id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris"})]
    assert_stream_matches(text, [WEATHER], seed=7)
