"""Hundreds of think blocks or Command R7B answers in one delta: each block handed the rest of the text to the next
one level deeper (`_spec_feed` -> `_maybe_spec` -> `_try_spec` -> `_spec_feed`), and a 12 KB delta of 350 blocks
raised RecursionError out of the stream. They now go one after another; the answer is the one-shot one."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import stream
from tests.repair.incremental_helpers import expected, stream_incremental

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


@pytest.mark.parametrize("block", ["<think>a</think>\n", "<seed:think>a</seed:think>\n",
                                   "<|START_RESPONSE|>a<|END_RESPONSE|>", "<|START_THINKING|>t<|END_THINKING|>"])
@pytest.mark.parametrize("count", [350, 2000])
def test_many_blocks_in_one_delta(block: str, count: int) -> None:
    text = block * count + "done"
    r = repair_message(text, TOOLS)
    for pieces in ([text], [text[:7], text[7:]], [block * (count // 2), block * (count - count // 2) + "done"]):
        got, content, reasoning, _ = stream(pieces, TOOLS)
        assert got == r
        assert content == (r.content or "") and reasoning == (r.reasoning_content or "")
        _, assembled = stream_incremental(pieces, TOOLS)
        assert (assembled.content, assembled.call_list()) == (r.content or "", expected(text, TOOLS)[1])
