"""Circuit breaker open / half-open, concurrency limit with a bounded queue."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes.openai_upstream import Step, completion, stream_of
from tests.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _breaking_lab(fakes, router) -> tuple[Any, Any, Any, FakeClock]:
    """A model on one provider whose breaker opens after 2 consecutive failures (30 s cooldown), on a clock the
    test moves: the upstream, the router, the breaker and the clock."""
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, breaker: {{failures: 2, cooldown: 30}}}}
models:
  - {{name: m, provider: lab}}
""")
    breaker = r.state.runtime.upstreams["lab"].breaker
    breaker.clock = clock = FakeClock()
    return up, r, breaker, clock


async def test_breaker_opens_then_half_open_probe_closes_it(fakes, router):
    up, r, breaker, clock = await _breaking_lab(fakes, router)
    client = r.client()
    up.push(Step(status=500), Step(status=500))
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert breaker.state == "open"
    with pytest.raises(openai.APIStatusError) as info:  # refused without contacting the upstream
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503 and info.value.body["code"] == "circuit_open"
    assert 1 <= int(info.value.response.headers["Retry-After"]) <= 5  # not the whole cooldown: clients waited it
    assert len(up.requests) == 2                                        # out on every retry (Codex: minutes)
    clock.now += 31  # cooldown over: one probe goes through
    up.push(Step(status=500))
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert breaker.state == "open" and len(up.requests) == 3  # the failed probe re-opened it
    clock.now += 31
    resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "y"}])
    assert resp.choices[0].message.content == "echo: y" and breaker.state == "closed"


async def test_half_open_lets_one_probe_at_a_time(fakes, router):
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, breaker: {{failures: 1, cooldown: 5}}}}
models:
  - {{name: m, provider: lab}}
""")
    breaker = r.state.runtime.upstreams["lab"].breaker
    clock = breaker.clock = FakeClock()
    client = r.client()
    up.push(Step(status=500))
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    clock.now += 6
    gate = asyncio.Event()
    up.push(Step(json=completion("held", "m"), gate=gate))
    probe = asyncio.create_task(client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                                   "content": "p"}]))
    await up.wait_requests(2)
    assert breaker.state == "half_open"
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert info.value.body["code"] == "circuit_open"
    gate.set()
    await probe
    assert breaker.state == "closed"


async def test_breaker_open_falls_back(fakes, router):
    a, b = await fakes("a"), await fakes("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 0, breaker: {{failures: 1, cooldown: 60}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 0}}
models:
  - {{name: m, provider: a, fallbacks: [n]}}
  - {{name: n, provider: b}}
""")
    a.push(Step(status=500))
    client = r.client()
    for _ in range(3):
        resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert resp.model == "m"
    assert len(a.requests) == 1 and len(b.requests) == 3


async def test_queue_full_gives_429_with_retry_after(fakes, router):
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, max_concurrency: 1, max_queue: 1}}
models:
  - {{name: m, provider: lab}}
""")
    gate = asyncio.Event()
    up.push(Step(json=completion("held", "m"), gate=gate))
    client = r.client()
    first = asyncio.create_task(client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                                   "content": "1"}]))
    await up.wait_requests(1)
    second = asyncio.create_task(client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                                    "content": "2"}]))
    limiter = r.state.runtime.upstreams["lab"].limiter

    await wait_until(lambda: limiter.queued >= 1)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "3"}])
    assert info.value.body["code"] == "queue_full" and info.value.response.headers["Retry-After"] == "1"
    gate.set()
    assert (await first).choices[0].message.content == "held"
    assert (await second).choices[0].message.content == "echo: 2"  # the queued one was served, not lost
    assert limiter.active == 0 and limiter.queued == 0


async def test_connection_refused_is_retried_then_502(router):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    r = await router(f"""
providers:
  dead: {{type: openai, base_url: 'http://127.0.0.1:{port}/v1', retries: 1, backoff: {{base: 0.001}}}}
models:
  - {{name: m, provider: dead}}
""")
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502 and info.value.body["code"] == "upstream_connect"


def _unused_url() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    return f"http://127.0.0.1:{port}/v1"


async def test_retry_goes_to_a_replica_that_has_not_failed(fakes, router):
    live = await fakes("live")
    r = await router(f"""
providers:
  dead: {{type: openai, base_url: '{_unused_url()}', retries: 2, backoff: {{base: 0.001, max: 0.002}}}}
  live: {{type: openai, base_url: '{live.url}', retries: 2, backoff: {{base: 0.001, max: 0.002}}}}
models:
  - name: pool
    model: m
    replicas: [{{provider: dead}}, {{provider: live}}]
""")
    resp = await r.client().chat.completions.with_raw_response.create(
        model="pool", messages=[{"role": "user", "content": "x"}])
    assert resp.headers["x-agentgate-provider"] == "live"
    assert resp.parse().choices[0].message.content == "echo: x" and len(live.requests) == 1


async def test_replicas_that_all_failed_are_retried_in_turn(fakes, router):
    a, b = await fakes("a"), await fakes("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 2, backoff: {{base: 0.001, max: 0.002}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 2, backoff: {{base: 0.001, max: 0.002}}}}
models:
  - name: pool
    model: m
    replicas: [{{provider: a}}, {{provider: b}}]
""")
    a.push(Step(status=500))
    b.push(Step(status=500))
    resp = await r.client().chat.completions.create(model="pool", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "echo: x"
    assert (len(a.requests), len(b.requests)) == (2, 1)  # a, b, then a again


async def _streamed(client: openai.AsyncOpenAI) -> str:
    stream = await client.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "x"}])
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def test_streams_that_fail_mid_way_open_the_breaker(fakes, router):
    up, r, breaker, clock = await _breaking_lab(fakes, router)
    client = r.client()
    for _ in range(2):  # a first chunk, then a reset: a failure (the first chunk proved nothing)
        up.push(Step(sse=stream_of(["a", "b", "c"], "m"), reset_after=2))
        with pytest.raises(openai.APIError):
            await _streamed(client)
    assert breaker.state == "open"
    clock.now += 31  # the probe's stream fails after its first chunk: open again
    up.push(Step(sse=stream_of(["a", "b", "c"], "m"), reset_after=2))
    with pytest.raises(openai.APIError):
        await _streamed(client)
    assert breaker.state == "open" and len(up.requests) == 3
    clock.now += 31  # a probe closes it only once its stream ended normally
    resume, paused = asyncio.Event(), asyncio.Event()
    up.push(Step(sse=stream_of(["a", "b"], "m"), pause_after=2, resume=resume, paused=paused))
    probe = asyncio.create_task(_streamed(client))
    await paused.wait()
    assert breaker.state == "half_open"
    with pytest.raises(openai.APIStatusError) as info:  # still the one probe
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert info.value.body["code"] == "circuit_open"
    resume.set()
    assert await probe == "ab" and breaker.state == "closed"


async def test_a_stream_that_ends_normally_resets_the_failure_count(fakes, router):
    up, r, breaker, _ = await _breaking_lab(fakes, router)
    client = r.client()
    up.push(Step(sse=stream_of(["a", "b", "c"], "m"), reset_after=2), Step(sse=stream_of(["ok"], "m")),
            Step(sse=stream_of(["a", "b", "c"], "m"), reset_after=2))
    with pytest.raises(openai.APIError):
        await _streamed(client)
    assert await _streamed(client) == "ok" and breaker.consecutive == 0
    with pytest.raises(openai.APIError):
        await _streamed(client)
    assert breaker.state == "closed" and breaker.consecutive == 1


@pytest.mark.parametrize("before_end", [[], [b": OPENROUTER PROCESSING\n\n"], [b"\n", b": waiting\n\n\n"]],
                         ids=["nothing", "a comment", "blank lines and a comment"])
@pytest.mark.parametrize("route", ["chat", "messages", "responses"])
async def test_a_stream_that_ends_before_its_first_chunk_is_retried_then_falls_back(fakes, router, route,
                                                                                    before_end):
    """Headers, then the end; or only SSE comments (a gateway's while it waits) before the end: no event came, so
    nothing reached the client and the stream is a failure like a reset (the comment had committed it)."""
    import anthropic

    a, b = await fakes("a"), await fakes("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 1, backoff: {{base: 0.001, max: 0.002}},
      breaker: {{failures: 10, cooldown: 30}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 0}}
models:
  - {{name: m, provider: a, fallbacks: [n]}}
  - {{name: n, provider: b}}
""")
    a.push(Step(sse=before_end, done=False), Step(sse=before_end, done=False))  # no event, then the end
    b.push(Step(sse=stream_of(["fine"], "n")))
    if route == "chat":
        assert await _streamed(r.client()) == "fine"
    elif route == "messages":
        claude = anthropic.AsyncAnthropic(base_url=r.url, api_key="unused", max_retries=0)
        try:
            async with claude.messages.stream(model="m", max_tokens=20,
                                              messages=[{"role": "user", "content": "x"}]) as s:
                assert await s.get_final_text() == "fine"
        finally:
            await claude.close()
    else:
        events = [e async for e in await r.client().responses.create(model="m", stream=True, input="x",
                                                                     store=False)]
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == "fine"
    assert (len(a.requests), len(b.requests)) == (2, 1)
    assert r.state.runtime.upstreams["a"].breaker.consecutive == 2  # two failures, no success


async def test_a_replica_with_a_free_slot_is_preferred_and_a_full_queue_tries_the_next(fakes, router):
    a, b = await fakes("a"), await fakes("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 0, max_concurrency: 1, max_queue: 0, queue_timeout: 30}}
  b: {{type: openai, base_url: '{b.url}', retries: 0, max_concurrency: 2, max_queue: 5, queue_timeout: 30}}
models:
  - name: pool
    model: m
    replicas: [{{provider: a}}, {{provider: b}}]
""")
    gate = asyncio.Event()
    for f in (a, b):
        f.push(*[Step(json=completion("held", "m"), gate=gate) for _ in range(3)])
    client = r.client()

    def ask(text: str):  # type: ignore[no-untyped-def]
        return asyncio.create_task(client.chat.completions.with_raw_response.create(
            model="pool", messages=[{"role": "user", "content": text}]))

    held = [ask("1")]
    await a.wait_requests(1)
    held.append(ask("2"))
    await b.wait_requests(1)
    held.append(ask("3"))  # a is at its limit, b is not: b, not a's queue
    await b.wait_requests(2)
    assert len(a.requests) == 1
    queued = ask("4")  # both at their limits: a's queue holds none, so b's queue
    limiter_b = r.state.runtime.upstreams["b"].limiter
    await wait_until(lambda: limiter_b.queued == 1)
    gate.set()
    answers = await asyncio.gather(*held, queued)
    assert [x.headers["x-agentgate-provider"] for x in answers] == ["a", "b", "b", "b"]
    assert all(x.status_code == 200 for x in answers)


async def test_a_retry_after_past_max_retry_after_is_not_retried_early(fakes, router):
    a, b = await fakes("a"), await fakes("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: 2, backoff: {{base: 0.001, max: 0.002, max_retry_after: 1}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 0}}
models:
  - {{name: m, provider: a, fallbacks: [n]}}
  - {{name: n, provider: b}}
  - {{name: alone, provider: a}}
""")
    slow_down = {"error": {"message": "slow down", "type": "rate_limit"}}
    a.push(*[Step(status=429, json=slow_down, headers={"Retry-After": "5"})] * 2)
    client = r.client()
    resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "echo: x"  # the fallback, at once
    assert (len(a.requests), len(b.requests)) == (1, 1)
    with pytest.raises(openai.RateLimitError) as info:  # alone: the upstream's answer, its Retry-After kept
        await client.chat.completions.create(model="alone", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["Retry-After"] == "5" and len(a.requests) == 2


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        return resp.status, await resp.read()


async def test_a_probe_cancelled_in_the_queue_frees_the_breaker(fakes, router):
    """A half-open probe whose client leaves while it waits in the provider's queue (max_concurrency reached) frees
    the probe: otherwise the breaker stays half-open with its probe taken and no request is let through again."""
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, max_concurrency: 1, max_queue: 4,
         breaker: {{failures: 1, cooldown: 30}}}}
models:
  - {{name: m, provider: lab}}
""")
    lab = r.state.runtime.upstreams["lab"]
    breaker = lab.breaker
    clock = breaker.clock = FakeClock()
    gate, resume, paused = asyncio.Event(), asyncio.Event(), asyncio.Event()
    # B holds the slot, then fails (the breaker opens); A, queued behind it while the breaker was closed, gets the
    # slot and streams (paused upstream)
    up.push(Step(status=500, gate=gate),
            Step(sse=stream_of(["a", "b", "c"], "m"), pause_after=1, resume=resume, paused=paused))
    msg = [{"role": "user", "content": "x"}]
    async with aiohttp.ClientSession() as s_b, aiohttp.ClientSession() as s_a, aiohttp.ClientSession() as s_c, \
            aiohttp.ClientSession() as s_d:
        b = asyncio.create_task(_post(s_b, r.url, {"model": "m", "messages": msg}))
        await up.wait_requests(1)
        a = asyncio.create_task(_post(s_a, r.url, {"model": "m", "messages": msg, "stream": True}))
        await wait_until(lambda: lab.limiter.queued == 1)
        gate.set()
        status, _ = await b
        assert status == 502 and breaker.state == "open"
        await asyncio.wait_for(paused.wait(), 5)  # A streams, holding the slot
        clock.now += 31  # cooldown over: the next request is the half-open probe
        c = asyncio.create_task(_post(s_c, r.url, {"model": "m", "messages": msg}))
        await wait_until(lambda: lab.limiter.queued == 1)
        assert breaker.state == "half_open"
        c.cancel()  # the probe's client leaves while it waits for the slot
        await asyncio.gather(c, return_exceptions=True)
        await s_c.close()
        await wait_until(lambda: lab.limiter.queued == 0)
        a.cancel()  # A's client leaves too (Claude Code's Esc): no verdict on the upstream
        await asyncio.gather(a, return_exceptions=True)
        await s_a.close()
        await wait_until(lambda: lab.outstanding == 0 and lab.limiter.active == 0)
        resume.set()
        # nothing is in flight, the cooldown is over: the next request must be let through as the probe
        status, body = await asyncio.wait_for(_post(s_d, r.url, {"model": "m", "messages": msg}), 10)
        assert status == 200, (status, body, breaker.state, breaker.probing)
        assert breaker.state == "closed"


@pytest.mark.parametrize("ends", ["cancelled", "redirect"])
async def test_only_the_probe_frees_the_probe(fakes, router, ends):
    """A request let through while the breaker was closed that ends without a verdict once the breaker is half-open
    (its client left; a redirect, which does not count) leaves the probe to the probe: a second request is still
    refused while the probe runs."""
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, breaker: {{failures: 1, cooldown: 30}}}}
models:
  - {{name: m, provider: lab}}
""")
    breaker = r.state.runtime.upstreams["lab"].breaker
    clock = breaker.clock = FakeClock()
    held, probe_gate = asyncio.Event(), asyncio.Event()
    early = Step(status=302, headers={"Location": "http://127.0.0.1:1/"}, gate=held) if ends == "redirect" \
        else Step(json=completion("never", "m"), gate=held)
    up.push(early, Step(status=500), Step(json=completion("probed", "m"), gate=probe_gate))
    msg = [{"role": "user", "content": "x"}]
    async with aiohttp.ClientSession() as s_n, aiohttp.ClientSession() as s_f, aiohttp.ClientSession() as s_p:
        n = asyncio.create_task(_post(s_n, r.url, {"model": "m", "messages": msg}))  # let through while closed
        await up.wait_requests(1)
        status, _ = await _post(s_f, r.url, {"model": "m", "messages": msg})
        assert status == 502 and breaker.state == "open"
        clock.now += 31
        p = asyncio.create_task(_post(s_p, r.url, {"model": "m", "messages": msg}))  # the probe, held upstream
        await up.wait_requests(3)
        assert breaker.state == "half_open" and breaker.probing
        if ends == "cancelled":
            n.cancel()
            await asyncio.gather(n, return_exceptions=True)
            await s_n.close()
        else:
            held.set()
            assert (await n)[0] == 502
        await wait_until(lambda: r.state.runtime.upstreams["lab"].outstanding == 1)
        assert breaker.probing  # the probe still runs: still held
        status, body = await _post(s_f, r.url, {"model": "m", "messages": msg})
        assert status == 503 and b"circuit_open" in body and len(up.requests) == 3
        probe_gate.set()
        assert (await p)[0] == 200 and breaker.state == "closed"
