"""Content after a <think> block begins a line, for a fence as for a call: a fence opened (or closed) right after
`</think>` is read so one-shot, in a stream read whole and in a stream cut anywhere (the one-shot repair read the
fence's backticks as the think line's text and made a call of a fenced example, which the stream kept as text; a
stream cut after the block read on as the one-shot did, one read whole did not)."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, ids
from tests.repair.incremental_helpers import assert_incremental_matches

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}
CALL = '>>>get_weather\n{"location": "Oslo"}\n'


@pytest.mark.parametrize(("text", "calls"), [
    (f"<think>a</think>```\n{CALL}```", 0),          # a fence opens after the block: its example stays text
    (f"```\n<think>a</think>```\n{CALL}", 1),        # a fence the block sat in closes after it: the call is read
    (f"```\n<think>a</think>\n```\n{CALL}", 1),
    (f"<think>a</think>\n```\n{CALL}```", 0),
])
def test_a_fence_right_after_a_think_block_reads_alike_everywhere(text: str, calls: int) -> None:
    r = repair_message(text, [WEATHER], id_factory=ids)
    assert (len(r.tool_calls), r.reasoning_content) == (calls, "a")
    for seed in range(4):
        assert_stream_matches(text, [WEATHER], seed=seed)
        assert_incremental_matches(text, [WEATHER], seed=seed)
