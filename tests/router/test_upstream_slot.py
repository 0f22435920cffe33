"""An upstream's slot (its concurrency limit and outstanding count) is released however the block it guards ends,
and held past the block only when handed on."""

from __future__ import annotations

import asyncio

import pytest

from router.config import parse_config
from router.metrics import Metrics
from router.resilience import QueueFull
from router.upstream.openai import OpenAIUpstream

CONFIG = """
providers:
  lab: {type: openai, base_url: 'http://127.0.0.1:9/v1', max_concurrency: 1, max_queue: 1, queue_timeout: 5}
models:
  - {name: m, provider: lab}
"""


def upstream() -> OpenAIUpstream:
    return OpenAIUpstream(parse_config(CONFIG, env={}).providers["lab"])


async def test_a_slot_is_released_when_its_block_raises():
    up, metrics = upstream(), Metrics()
    with pytest.raises(ValueError):
        async with up.slot(metrics):
            assert up.outstanding == 1 and up.limiter.active == 1
            raise ValueError("a bug below dispatch")
    assert up.outstanding == 0 and up.limiter.active == 0


async def test_a_kept_slot_is_held_until_released_once():
    up, metrics = upstream(), Metrics()
    async with up.slot(metrics) as slot:
        slot.keep()
    assert up.outstanding == 1 and up.limiter.active == 1
    slot.release()
    slot.release()  # a second release changes nothing
    assert up.outstanding == 0 and up.limiter.active == 0


async def test_a_waiting_slot_gets_the_released_one_and_a_full_queue_refuses():
    up, metrics = upstream(), Metrics()
    async with up.slot(metrics) as first:
        first.keep()
    waiter = asyncio.ensure_future(up.slot(metrics).__aenter__())
    await asyncio.sleep(0)
    assert up.limiter.queued == 1
    with pytest.raises(QueueFull):  # max_queue 1: the next one is refused at once
        async with up.slot(metrics):
            pass
    first.release()
    second = await waiter
    assert up.outstanding == 1 and up.limiter.active == 1 and up.limiter.queued == 0
    second.release()
    assert up.outstanding == 0 and up.limiter.active == 0


async def test_a_provider_retired_by_a_reload_and_its_successor_count_together():
    """After a reload that changes a provider, its old instance (still serving a stream) and the new one share the
    in-flight series: each set it to its own count, so it read 0 with a request in flight."""
    from prometheus_client.parser import text_string_to_metric_families

    old, new, metrics = upstream(), upstream(), Metrics()

    def in_flight() -> float:
        return next(s.value for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples
                    if s.name == "agentgate_in_flight_requests" and s.labels.get("provider") == "lab")

    async with old.slot(metrics) as stream:
        stream.keep()
    async with new.slot(metrics) as second:
        second.keep()
    assert in_flight() == 2
    stream.release()
    assert in_flight() == 1
    second.release()
    assert in_flight() == 0


async def test_a_waiter_cancelled_as_the_slot_is_handed_to_it_gives_it_back():
    """A client that leaves in the same loop turn as release() hands its queued request the slot: the cancellation
    used to be lost (asyncio.wait_for on 3.10/3.11 returned the result), so a ghost request held the slot and went
    upstream for nobody."""
    from router.resilience import Limiter

    lim = Limiter(limit=1, max_queue=10, timeout=30)
    await lim.acquire()
    waiter = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0)
    assert lim.queued == 1
    lim.release()   # the slot passes to the waiter ...
    waiter.cancel()  # ... whose client leaves in the same turn
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.active == 0 and lim.queued == 0


async def test_a_waiter_cancelled_as_the_slot_is_handed_to_it_passes_it_on():
    from router.resilience import Limiter

    lim = Limiter(limit=1, max_queue=10, timeout=30)
    await lim.acquire()
    first = asyncio.ensure_future(lim.acquire())
    second = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0)
    lim.release()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the next waiter gets the slot the cancelled one gave back
    assert lim.active == 1 and lim.queued == 0
    lim.release()
    assert lim.active == 0


async def test_a_waiter_times_out_and_a_cancelled_one_leaves_the_queue():
    from router.resilience import Limiter

    lim = Limiter(limit=1, max_queue=10, timeout=0.05)
    await lim.acquire()
    with pytest.raises(QueueFull):
        await lim.acquire()
    assert lim.queued == 0 and lim.active == 1
    waiter = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.queued == 0 and lim.active == 1
    lim.release()
    assert lim.active == 0
