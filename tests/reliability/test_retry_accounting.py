"""`agentgate_retries_total{reason="upstream"}` and the access log's `retries` count the tries that were made
again, not the ones planned: a retry the breaker then refused, or one whose client left while it waited for its
backoff or Retry-After, never reached the upstream and is no retry."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.fakes.openai_upstream import Step
from tests.reliability.support import chat
from tests.reliability.test_load_faults import by_status, scrape, total
from tests.waiting import wait_until


async def test_a_retry_the_breaker_refused_is_not_counted(content_upstreams, router):
    a = await content_upstreams("a")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 2, backoff: {{base: 0.001, max: 0.002}},
      breaker: {{failures: 1, cooldown: 30}}}}
models:
  - {{name: m, provider: a}}
""")
    async with aiohttp.ClientSession() as s:
        c = await chat(s, r.url, "m", "500 opens the breaker")
        assert c.status == 503 and c.error is not None
        assert len(a.requests) == 1  # the breaker opened on the first failure: nothing was tried again
        samples = await scrape(s, r.url)
    assert total(samples, "agentgate_retries_total", reason="upstream") == 0
    assert by_status(samples) == {503: 1}


async def test_a_retry_whose_client_left_during_its_retry_after_is_not_counted(content_upstreams, router):
    a = await content_upstreams("a")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 2, backoff: {{max_retry_after: 30}}}}
models:
  - {{name: m, provider: a}}
""")
    a.push(Step(status=503, headers={"Retry-After": "20"}))
    async with aiohttp.ClientSession() as s:
        waiting = asyncio.ensure_future(chat(s, r.url, "m", "ok:1 left while the retry slept", stream=True))
        await a.wait_requests(1)
        await wait_until(lambda: r.state.runtime.upstreams["a"].outstanding == 0)  # sleeping before its retry
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

        async def counted() -> bool:
            return by_status(await scrape(s, r.url)) == {499: 1}

        async def until_counted() -> None:
            while not await counted():  # noqa: ASYNC110 - a scrape: no event to wait on
                await asyncio.sleep(0.02)

        await asyncio.wait_for(until_counted(), 10)
        samples = await scrape(s, r.url)
    assert len(a.requests) == 1
    assert total(samples, "agentgate_retries_total", reason="upstream") == 0
    assert total(samples, "agentgate_in_flight_requests") == 0 and total(samples, "agentgate_queued_requests") == 0
