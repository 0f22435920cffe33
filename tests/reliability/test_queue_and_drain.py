"""Requests waiting for a provider slot: a client that leaves frees its place in the queue (the gauges back to 0,
the next request served in order), and a shutdown whose drain runs out answers each waiting request, and each
request sleeping out its Retry-After, with one 503 `server_shutting_down` (a begun stream: its error event)."""

from __future__ import annotations

import asyncio

import aiohttp

from router.drain import IN_FLIGHT
from tests.fakes.openai_upstream import Step
from tests.reliability.support import chat
from tests.reliability.test_load_faults import by_status, scrape, total
from tests.waiting import wait_until


async def test_clients_that_leave_the_queue_free_their_places(content_upstreams, router):
    a = await content_upstreams("a")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 0, max_concurrency: 1, max_queue: 3}}
models:
  - {{name: m, provider: a}}
""")
    up = r.state.runtime.upstreams["a"]
    async with aiohttp.ClientSession() as s:
        hold = asyncio.ensure_future(chat(s, r.url, "m", "stall holds the slot", stream=True))
        await a.wait_requests(1)
        leaving = [asyncio.ensure_future(chat(s, r.url, "m", f"ok:{i} leaves", stream=i % 2 == 0)) for i in range(3)]
        await wait_until(lambda: up.limiter.queued == 3)
        full = await chat(s, r.url, "m", "ok:over the queue")
        assert full.status == 429 and full.error is not None and full.error["code"] == "queue_full"
        assert full.headers["retry-after"] == "1"
        for job in leaving:
            job.cancel()
        await asyncio.gather(*leaving, return_exceptions=True)
        await wait_until(lambda: up.limiter.queued == 0)
        staying = [asyncio.ensure_future(chat(s, r.url, "m", f"ok:{i} stays")) for i in range(3)]  # room again
        await wait_until(lambda: up.limiter.queued == 3)
        a.release.set()
        held = await hold
        assert held.status == 200 and held.done
        for i, c in enumerate(await asyncio.gather(*staying)):
            assert c.status == 200 and c.text == f"ok:{i} stays"
        await wait_until(lambda: up.outstanding == 0)
        samples = await scrape(s, r.url)
    assert len(a.requests) == 4  # none of the clients that left reached the upstream
    assert by_status(samples) == {200: 4, 429: 1, 499: 3}
    assert total(samples, "agentgate_queued_requests") == 0 and total(samples, "agentgate_in_flight_requests") == 0
    assert up.limiter.active == 0


async def test_a_drain_that_runs_out_answers_the_queued_and_the_sleeping(content_upstreams, router):
    a, b = await content_upstreams("a"), await content_upstreams("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 0, max_concurrency: 2, max_queue: 10}}
  b: {{type: openai, base_url: '{b.url}', retries: 1, backoff: {{max_retry_after: 30}}}}
models:
  - {{name: m, provider: a}}
  - {{name: n, provider: b}}
""")
    up = r.state.runtime.upstreams["a"]
    b.push(Step(status=503, headers={"Retry-After": "20"}))
    async with aiohttp.ClientSession() as s:
        begun = asyncio.ensure_future(chat(s, r.url, "m", "stall-mid begun", stream=True))
        others = [asyncio.ensure_future(chat(s, r.url, "m", "stall-headers not begun", stream=True))]
        await a.wait_requests(2)
        others += [asyncio.ensure_future(chat(s, r.url, "m", f"ok:{i} queued", stream=i % 2 == 0))
                   for i in range(4)]
        others.append(asyncio.ensure_future(chat(s, r.url, "n", "ok:sleeps out its Retry-After", stream=True)))
        await b.wait_requests(1)
        await wait_until(lambda: up.limiter.queued == 4 and r.state.runtime.upstreams["b"].outstanding == 0)
        await r.app[IN_FLIGHT].drain(timeout=0.3, end_timeout=5)
        stream = await begun
        answers = await asyncio.gather(*others)
        await wait_until(lambda: up.outstanding == 0)
        samples = await scrape(s, r.url)
    assert stream.status == 200 and stream.text == "stall-mid " and not stream.done
    assert stream.error is not None and stream.error["code"] == "server_shutting_down"
    for c in answers:
        assert c.status == 503 and c.error is not None and c.error["code"] == "server_shutting_down"
    assert len(a.requests) == 2 and len(b.requests) == 1  # nothing waiting was sent on its way out
    assert by_status(samples) == {503: 7}  # the begun stream counts with its error event's status
    assert total(samples, "agentgate_queued_requests") == 0 and total(samples, "agentgate_in_flight_requests") == 0
    assert total(samples, "agentgate_retries_total") == 0
    assert up.limiter.active == 0 and up.limiter.queued == 0
