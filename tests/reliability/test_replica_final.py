"""A failure that makes trying the same upstream again useless (a redirect: a misconfigured `base_url`) rules out
that replica for the request, not its healthy siblings: the request goes to the hop's other replicas (within its
retries) before the fallback chain or an error, and a redirect never opens the breaker, so without this a pool
with one misconfigured replica failed every request the balancer gave it, for ever."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.fakes.openai_upstream import FakeUpstream, Step, completion
from tests.reliability.support import chat
from tests.reliability.test_load_faults import by_status, scrape, total


class Redirecting(FakeUpstream):
    def default(self, body: object) -> Step:
        return Step(status=307, headers={"Location": "http://127.0.0.1:1/v1/chat/completions"},
                    json=completion("never", "m"))


async def test_a_redirecting_replica_leaves_the_request_to_its_sibling(content_upstreams, router):
    bad = Redirecting("bad")
    await bad.start()
    try:
        good = await content_upstreams("good", faults=False)
        r = await router(f"""
providers:
  bad: {{type: openai, base_url: '{bad.url}', retries: 1}}
  good: {{type: openai, base_url: '{good.url}', retries: 1}}
models:
  - name: m
    replicas: [{{provider: bad}}, {{provider: good}}]
  - {{name: solo, provider: bad}}
""")
        async with aiohttp.ClientSession() as s:
            answers = await asyncio.gather(*(chat(s, r.url, "m", f"ok:{i} pool", stream=i % 2 == 0)
                                             for i in range(12)))
            for i, c in enumerate(answers):
                assert c.status == 200 and c.text == f"ok:{i} pool" and c.provider == "good", (c.status, c.error)
            assert bad.requests  # the balancer did pick the redirecting replica
            tried_bad = len(bad.requests)
            alone = await chat(s, r.url, "solo", "ok:alone")  # no sibling: the redirect is the answer, once
            assert alone.status == 502 and alone.error is not None and alone.error["code"] == "upstream_redirect"
            assert len(bad.requests) == tried_bad + 1
            samples = await scrape(s, r.url)
        assert by_status(samples) == {200: 12, 502: 1}
        # each move from the redirecting replica to its sibling was one retry
        assert total(samples, "agentgate_retries_total", reason="upstream") == tried_bad
    finally:
        await bad.stop()
