"""The upstreams a reload retires (its removed and changed providers): kept open while a request that started
before the reload may still turn to one (a slow primary, then its fallback), however long that takes up to
`DRAIN_LIMIT`, then closed for good: a request that turns to one later goes on to its next target, or gets 503."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from openai.types.chat import ChatCompletionMessageParam

from router import reload as reload_mod
from router.reload import RELOADER
from tests.fakes.openai_upstream import FakeUpstream, Step
from tests.ops.conftest import Served
from tests.waiting import wait_until

KEY = "sk-admin-key-5e6f7a8b9c"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
Fakes = Callable[[str], Awaitable[FakeUpstream]]
Serve = Callable[[str], Awaitable[Served]]
STILL_RUN = "requests that started before it still run"


def cfg(a: str, b: str, extra: str = "") -> str:
    return f"""
server:
  api_keys: [{{key: {KEY}, name: admin}}]
providers:
  pa: {{type: openai, base_url: "{a}", retries: 0}}
  pb: {{type: openai, base_url: "{b}", retries: 0}}
models:
  - {{name: demo, provider: pa, model: up-demo, fallbacks: [backup]}}
  - {{name: backup, provider: pb, model: up-backup}}
{extra}"""


@pytest.mark.parametrize("reloads_before", [0, 1])
async def test_a_retired_upstream_stays_open_while_a_request_from_before_the_reload_runs(
        fakes: Fakes, served: Serve, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        reloads_before: int) -> None:
    """`reloads_before`: reloads that keep pb come between the request's start and the one that changes it."""
    monkeypatch.setattr(reload_mod, "DRAIN_GRACE", 0.3)  # (the primary's wait outlasts it, as 600 s outlast 30 s)
    caplog.set_level(logging.INFO, logger="agentgate.reload")
    a, b, b2 = await fakes("a"), await fakes("b"), await fakes("b2")
    gate = asyncio.Event()
    a.push(Step(status=500, json={"error": {"message": "boom"}}, gate=gate))
    r = await served(cfg(a.url, b.url))
    client = r.client(KEY)
    old_pb = r.state.runtime.upstreams["pb"]

    call = asyncio.ensure_future(client.chat.completions.create(model="demo", messages=HI))
    await wait_until(lambda: len(a.requests) == 1, timeout=10)  # waiting on the primary, holding the old runtime

    for n in range(reloads_before):
        r.write(cfg(a.url, b.url, f"  - {{name: more{n}, provider: pa}}"))
        status, body = await r.reload(KEY)
        assert status == 200 and r.state.runtime.upstreams["pb"] is old_pb, body
    r.write(cfg(a.url, b2.url))  # pb changed (a new base_url): the old pb is retired
    status, body = await r.reload(KEY)
    assert status == 200, body
    retired = asyncio.ensure_future(r.app[RELOADER].idle())
    await wait_until(lambda: retired.done() or STILL_RUN in caplog.text, timeout=10)
    assert not retired.done(), "the retired upstream was closed while a request that may use it still ran"

    gate.set()  # the primary fails: the fallback goes to the pb of the request's (old) runtime, still open
    reply = await asyncio.wait_for(call, 10)
    assert reply.choices[0].message.content == "echo: hi"
    assert len(b.requests) == 1 and not b2.requests
    await asyncio.wait_for(retired, 10)  # the request ended: the old pb is closed now, and stays so
    assert old_pb._session is None  # type: ignore[attr-defined]
    await client.close()


async def test_a_request_stuck_past_the_limit_does_not_keep_retired_upstreams_open(
        fakes: Fakes, served: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reload_mod, "DRAIN_LIMIT", 0.3)
    a, b, b2 = await fakes("a"), await fakes("b"), await fakes("b2")
    gate = asyncio.Event()
    a.push(Step(json={"id": "c", "object": "chat.completion", "created": 1, "model": "up-demo", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "late"}, "finish_reason": "stop"}]}, gate=gate))
    r = await served(cfg(a.url, b.url))
    client = r.client(KEY)
    old_pb = r.state.runtime.upstreams["pb"]
    await client.chat.completions.create(model="backup", messages=HI)  # the old pb has a pooled connection
    assert old_pb._session is not None  # type: ignore[attr-defined]

    call = asyncio.ensure_future(client.chat.completions.create(model="demo", messages=HI))
    await wait_until(lambda: len(a.requests) == 1, timeout=10)
    r.write(cfg(a.url, b2.url))
    status, body = await r.reload(KEY)
    assert status == 200, body
    await asyncio.wait_for(r.app[RELOADER].idle(), 10)  # closed while the request still waits on its primary
    assert old_pb._session is None and not call.done()  # type: ignore[attr-defined]

    gate.set()
    reply = await asyncio.wait_for(call, 10)
    assert reply.choices[0].message.content == "late"
    await client.close()


async def chat(r: Served, model: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(
            r.url + "/v1/chat/completions", json={"model": model, "messages": HI},
            headers={"Authorization": f"Bearer {KEY}"}) as resp:
        return resp.status, await resp.json()


def cfg_retry(b: str) -> str:
    return f"""
server:
  api_keys: [{{key: {KEY}, name: admin}}]
providers:
  pb: {{type: openai, base_url: "{b}", retries: 1}}
models:
  - {{name: backup, provider: pb, model: up-backup}}
"""


async def test_a_retry_that_reaches_a_closed_upstream_gets_a_503_and_opens_nothing(
        fakes: Fakes, served: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reload_mod, "DRAIN_LIMIT", 0.3)  # the request's retry waits longer (its Retry-After)
    b, b2 = await fakes("b"), await fakes("b2")
    b.push(Step(status=429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "2"}))
    r = await served(cfg_retry(b.url))
    old_pb = r.state.runtime.upstreams["pb"]
    call = asyncio.ensure_future(chat(r, "backup"))
    await wait_until(lambda: len(b.requests) == 1, timeout=10)  # answered 429: the retry waits 2 s

    r.write(cfg_retry(b2.url))
    status, body = await r.reload(KEY)
    assert status == 200, body
    await asyncio.wait_for(r.app[RELOADER].idle(), 10)
    assert old_pb._session is None and not call.done()  # type: ignore[attr-defined]

    status, body = await asyncio.wait_for(call, 10)  # the retry meets the closed pb
    assert status == 503, body
    assert body["error"]["code"] == "upstream_unavailable"
    assert "config reload replaced it" in body["error"]["message"]
    assert len(b.requests) == 1 and not b2.requests
    assert old_pb._session is None  # type: ignore[attr-defined]


def cfg_spare(a: str, b: str, c: str) -> str:
    return cfg(a, b, "  - {name: spare, provider: pc, model: up-spare}").replace(
        "fallbacks: [backup]", "fallbacks: [backup, spare]").replace(
        "models:", f'  pc: {{type: openai, base_url: "{c}", retries: 0}}\nmodels:')


async def test_a_fallback_to_a_closed_upstream_goes_on_to_the_next_one(
        fakes: Fakes, served: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reload_mod, "DRAIN_LIMIT", 0.3)  # the request's primary takes longer
    a, b, b2, c = await fakes("a"), await fakes("b"), await fakes("b2"), await fakes("c")
    gate = asyncio.Event()
    a.push(Step(status=500, json={"error": {"message": "boom"}}, gate=gate))
    r = await served(cfg_spare(a.url, b.url, c.url))
    client = r.client(KEY)
    old_pb = r.state.runtime.upstreams["pb"]
    call = asyncio.ensure_future(client.chat.completions.create(model="demo", messages=HI))
    await wait_until(lambda: len(a.requests) == 1, timeout=10)

    r.write(cfg_spare(a.url, b2.url, c.url))
    status, body = await r.reload(KEY)
    assert status == 200, body
    await asyncio.wait_for(r.app[RELOADER].idle(), 10)  # old pb closed while the primary still works

    gate.set()  # the primary fails; its fallback's provider was closed: the next fallback answers
    reply = await asyncio.wait_for(call, 10)
    assert reply.choices[0].message.content == "echo: hi"
    assert len(c.requests) == 1 and not b.requests and not b2.requests
    assert old_pb._session is None  # type: ignore[attr-defined]
    await client.close()
