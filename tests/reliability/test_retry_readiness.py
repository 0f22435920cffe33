"""A retry among replicas that have all failed as often goes to the one it may try soonest: not to one that asked
to be left alone for 20 s (its Retry-After) while its sibling may be tried again at once."""

from __future__ import annotations

import aiohttp

from tests.fakes.openai_upstream import Step
from tests.reliability.support import chat
from tests.reliability.test_load_faults import scrape, total


async def test_the_retry_goes_to_the_replica_ready_soonest(content_upstreams, router):
    a, b = await content_upstreams("a", faults=False), await content_upstreams("b", faults=False)
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 2, backoff: {{base: 0.001, max: 0.002, max_retry_after: 30}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 2, backoff: {{base: 0.001, max: 0.002, max_retry_after: 30}}}}
models:
  - name: m
    replicas: [{{provider: a}}, {{provider: b}}]
""")
    a.push(Step(status=429, headers={"Retry-After": "20"}))  # a: not before 20 s
    b.push(Step(status=500))  # b: again after its short backoff
    async with aiohttp.ClientSession() as s:
        c = await chat(s, r.url, "m", "ok:answered by the replica that was ready")
        samples = await scrape(s, r.url)
    assert c.status == 200 and c.text == "ok:answered by the replica that was ready" and c.provider == "b"
    assert len(a.requests) == 1 and len(b.requests) == 2
    assert total(samples, "agentgate_retries_total", reason="upstream") == 2
