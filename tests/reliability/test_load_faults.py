"""Agent-shaped load against a provider with concurrency and queue limits while its replicas fail: every request
gets exactly one answer in the route's error shape, nothing in flight is lost, and `/metrics` agrees with what the
clients saw (requests by status, retries and fallbacks counted once, in-flight and queued gauges back to 0)."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.reliability.support import Chat, chat, request
from tests.waiting import wait_until

FAST = "backoff: {base: 0.001, max: 0.002}"


async def scrape(s: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    ans = await request(s, "GET", url + "/metrics")
    assert ans.status == 200
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(ans.body.decode()):
        for sample in fam.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items()
               if n == name and all(dict(lab).get(k) == want for k, want in labels.items()))


def by_status(samples: dict) -> Counter[int]:
    out: Counter[int] = Counter()
    for (n, lab), v in samples.items():
        if n == "agentgate_requests_total":
            out[int(dict(lab)["status"])] += int(v)
    return out


def seen_status(c: Chat) -> int:
    """The status a client saw: a stream that ended with an error event counts as that error's status."""
    if c.status == 200 and c.error is not None:
        return {"upstream_reset_mid_stream": 502, "upstream_timeout_mid_stream": 504}.get(c.error["code"], 502)
    return c.status


async def test_fifty_streams_through_a_limited_pool_while_one_replica_flaps(content_upstreams, router):
    a, b = await content_upstreams("a"), await content_upstreams("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 2, {FAST}, max_concurrency: 3, max_queue: 100,
      timeouts: {{first_byte: 1, idle: 1}}, breaker: {{failures: 1000}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 2, {FAST}, max_concurrency: 3, max_queue: 100,
      timeouts: {{first_byte: 1, idle: 1}}, breaker: {{failures: 1000}}}}
models:
  - name: m
    replicas: [{{provider: a}}, {{provider: b}}]
""")
    texts = []
    for i in range(50):
        kind = ["ok:", "reset-once:", "slow r", "reset:2 r", "ok:"][i % 5]
        texts.append(f"{kind}{i} load text here")
    async with aiohttp.ClientSession() as s:
        answers = await asyncio.gather(*(chat(s, r.url, "m", t, stream=True) for t in texts))
        tally: Counter[int] = Counter()
        for t, c in zip(texts, answers, strict=True):
            tally[seen_status(c)] += 1
            if t.startswith("reset:2"):
                assert c.status == 200 and c.error is not None and not c.done, (t, c.status, c.error)
                assert c.text == t.split(" ")[0] + " "
            else:
                assert c.status == 200 and c.error is None and c.done and c.text == t, (t, c.status, c.error)
        # a stream that failed after its first chunk was never tried again
        for t in texts:
            if t.startswith("reset:2"):
                assert a.seen.get(t, 0) + b.seen.get(t, 0) == 1
        await wait_until(lambda: all(up.outstanding == 0 for up in r.state.runtime.upstreams.values()))
        samples = await scrape(s, r.url)
    assert by_status(samples) == tally
    assert total(samples, "agentgate_in_flight_requests") == 0
    assert total(samples, "agentgate_queued_requests") == 0
    # each reset-once text failed once on each replica it had not reached yet (a retry goes to a replica that has
    # not failed): every attempt but the last was a retry, counted once
    tries = sum(a.seen.get(t, 0) + b.seen.get(t, 0) - 1 for t in texts if t.startswith("reset-once"))
    assert tries >= 10 and total(samples, "agentgate_retries_total", reason="upstream") == tries
