"""A Messages stream holds nothing per block it opened: a stream of many short blocks (thinking and text in turn)
kept a copy of every block's header to the end."""

from __future__ import annotations

import gc
import tracemalloc

from router.dialects.anthropic_in import MessagesStream
from tests.fakes.openai_upstream import chunk

BLOCKS = 40_000


def test_many_blocks_hold_no_memory_per_block():
    enc = MessagesStream("m", [])
    thinking, text = chunk("m", {"reasoning_content": "hm"}), chunk("m", {"content": "ok"})
    enc.feed(thinking)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(BLOCKS // 2):
            enc.feed(text)
            enc.feed(thinking)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    print(f"{BLOCKS} blocks: +{grown / 2**20:.2f} MB")
    assert grown < 256 * 1024, f"{BLOCKS} blocks held {grown / 2**20:.1f} MB"
