"""A Messages stream opens with `message_start`, whatever comes before the model's first token. Past the keepalive
interval without a first chunk (a local engine reading a long prompt) the stream starts anyway, and its first
keepalive went out at once: an `event: ping` before `message_start`, which Anthropic never sends (its streams are
`message_start`, then blocks, with pings among them) and which a client that builds the message from the events
cannot place. The stream that starts before its first chunk opens with `message_start` now; the pings follow it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from router import relay
from tests.dialects.conftest import CFG, claude
from tests.dialects.test_messages import raw_events
from tests.fakes.openai_upstream import Step, stream_of

ASK: dict[str, Any] = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def _slow_first_chunk() -> Step:
    """An answer whose first chunk comes well past the (shortened) keepalive interval."""
    go = asyncio.Event()
    asyncio.get_running_loop().call_later(0.6, go.set)
    return Step(sse=stream_of(["Hel", "lo"], "m"), pause_after=0, resume=go)


async def test_a_stream_started_before_its_first_chunk_opens_with_message_start(fakes, router, monkeypatch):
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.15)
    up = await fakes()
    up.push(_slow_first_chunk())
    r = await router(CFG.format(url=up.url))
    events = await raw_events(r.url, {**ASK, "stream": True})
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert "ping" in names  # the keepalives still flow, after it
    assert [e for e in names if e != "ping"] == ["message_start", "content_block_start", "content_block_delta",
                                                 "content_block_delta", "content_block_stop", "message_delta",
                                                 "message_stop"]
    text = "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta")
    assert text == "Hello"


@pytest.mark.parametrize("late", [False, True], ids=["first chunk in time", "first chunk late"])
async def test_the_sdk_reads_the_same_message(fakes, router, monkeypatch, late):
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.15)
    up = await fakes()
    up.push(_slow_first_chunk() if late else Step(sse=stream_of(["Hel", "lo"], "m")))
    r = await router(CFG.format(url=up.url))
    async with claude(r.url).messages.stream(**ASK) as s:
        final = await s.get_final_message()
    assert [(b.type, getattr(b, "text", None)) for b in final.content] == [("text", "Hello")]
    assert final.stop_reason == "end_turn"


async def test_a_client_gone_before_the_first_chunk_stops_the_upstream(fakes, router, monkeypatch):
    """The opening written, the stream still waits for its first chunk: a client that leaves then ends the
    upstream's request (nothing is left waiting for it)."""
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.15)
    up = await fakes()
    never = asyncio.Event()
    up.push(Step(sse=stream_of(["Hel", "lo"], "m"), pause_after=0, resume=never))
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json={**ASK, "stream": True}) as resp:
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"event: message_start\n")
    await asyncio.wait_for(up.cancelled_event.wait(), 5)
    assert up.cancelled == 1
