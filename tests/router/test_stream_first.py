"""A stream's first item is made ahead, bounded by the keepalive interval (`pipeline._chat_stream`): then the
items come straight from the pipeline's generator. What happens when the first item is late, fails, or is
abandoned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from router import pipeline, relay
from router.errors import ApiError
from router.exchange import Exchange


def _gen(log: list[str], first: asyncio.Event | None = None,
         status: bool = False) -> AsyncGenerator[pipeline.Items, None]:
    async def gen() -> AsyncGenerator[pipeline.Items, None]:
        try:
            if first is not None:
                await first.wait()
            if status:
                raise pipeline.UpstreamStatus(400, b'{"error": {"message": "bad"}}', "application/json", "up")
            for i in range(3):
                yield [{"n": i}]
        finally:
            log.append("closed")
    return gen()


async def _items(reply: pipeline.ChatReply) -> list[pipeline.Items]:
    assert reply.chunks is not None
    return [batch async for batch in reply.chunks]


async def test_a_ready_stream_gives_its_items_in_order() -> None:
    log: list[str] = []
    reply = await pipeline._chat_stream(Exchange("r", "chat"), _gen(log))
    assert await _items(reply) == [[{"n": 0}], [{"n": 1}], [{"n": 2}]]
    assert log == ["closed"]


async def test_an_upstream_status_before_the_stream_starts_is_raised_by_chat() -> None:
    with pytest.raises(pipeline.UpstreamStatus):
        await pipeline._chat_stream(Exchange("r", "chat"), _gen([], status=True))


async def test_a_late_first_item_comes_after_the_stream_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.05)
    log: list[str] = []
    first = asyncio.Event()
    reply = await pipeline._chat_stream(Exchange("r", "chat"), _gen(log, first))
    asyncio.get_running_loop().call_later(0.05, first.set)
    assert await _items(reply) == [[{"n": 0}], [{"n": 1}], [{"n": 2}]]
    assert log == ["closed"]


async def test_a_late_upstream_status_is_the_streams_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.05)
    first = asyncio.Event()
    reply = await pipeline._chat_stream(Exchange("r", "chat"), _gen([], first, status=True))
    first.set()
    with pytest.raises(ApiError) as err:
        await _items(reply)
    assert err.value.status == 400


async def test_a_stream_closed_before_its_late_first_item_stops_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.05)
    log: list[str] = []
    reply = await pipeline._chat_stream(Exchange("r", "chat"), _gen(log, asyncio.Event()))
    assert reply.chunks is not None
    await reply.chunks.aclose()  # type: ignore[attr-defined]  # the writer closes what it was given
    assert log == ["closed"]


async def test_a_stream_closed_while_waiting_for_its_late_first_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.05)
    log: list[str] = []
    reply = await pipeline._chat_stream(Exchange("r", "chat"), _gen(log, asyncio.Event()))
    assert reply.chunks is not None
    it = reply.chunks.__aiter__()
    waiting = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0.01)
    waiting.cancel()  # the client left: the writer's task is cancelled, then it closes the items
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await reply.chunks.aclose()  # type: ignore[attr-defined]
    assert log == ["closed"]
