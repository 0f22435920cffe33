"""Stopping the router (SIGTERM) within its drain time: requests in flight get `DRAIN_S` seconds; a stream still
running then ends with its route's terminal error event and a request still waiting gets a 503, both in the route's
shape. aiohttp's own shutdown cut such a stream without a word at about twice its timeout (past what the service
managers allow before they kill the process and its engines), and the log said the client had left."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from router import drain
from router.app import create_app, start
from router.config import parse_config
from tests.fakes.openai_upstream import Step, chunk, stream_of

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""
USER = [{"role": "user", "content": "x"}]
ROUTES = {"chat": ("/v1/chat/completions", {"model": "m", "messages": USER}),
          "messages": ("/v1/messages", {"model": "m", "max_tokens": 50, "messages": USER})}


async def _serving(fakes, step: Step):
    up = await fakes()
    up.push(step)
    running = await start(create_app(parse_config(CFG.format(url=up.url))))
    return running


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_stream_past_the_drain_ends_with_its_error_event(fakes, monkeypatch, route):
    monkeypatch.setattr(drain, "DRAIN_S", 0.3)
    running = await _serving(fakes, Step(sse=[chunk("m", {"content": f"{i} "}) for i in range(200)], interval=0.05))
    path, body = ROUTES[route]
    async with aiohttp.ClientSession() as s, s.post(running.url + path, json={**body, "stream": True}) as resp:
        first = await resp.content.readline()
        assert first.strip()
        stopping = asyncio.create_task(running.stop())
        text = (first + await resp.read()).decode()
    await stopping
    assert '"199 "' not in text  # cut by the drain, not run out (its 200 pieces take 10 s)
    last = json.loads(text.strip().split("\n\n")[-1].split("data: ", 1)[1])
    error = last["error"]
    if route == "messages":
        assert last["type"] == "error" and "shutting down" in error["message"]
    else:
        assert error["code"] == "server_shutting_down" and "[DONE]" not in text


async def test_what_finishes_within_the_drain_finishes(fakes, monkeypatch):
    monkeypatch.setattr(drain, "DRAIN_S", 5.0)
    running = await _serving(fakes, Step(sse=stream_of(["a", "b", "c", "d"], "m"), interval=0.1))
    path, body = ROUTES["chat"]
    async with aiohttp.ClientSession() as s, s.post(running.url + path, json={**body, "stream": True}) as resp:
        first = await resp.content.readline()
        stopping = asyncio.create_task(running.stop())
        text = (first + await resp.read()).decode()
    await stopping
    assert text.rstrip().endswith("data: [DONE]") and "error" not in text


async def test_a_request_still_waiting_gets_a_503(fakes, monkeypatch):
    monkeypatch.setattr(drain, "DRAIN_S", 0.3)
    running = await _serving(fakes, Step(json={"never": "sent"}, gate=asyncio.Event()))
    path, body = ROUTES["chat"]
    async with aiohttp.ClientSession() as s:
        request = asyncio.create_task(s.post(running.url + path, json=body))
        await asyncio.sleep(0.2)
        await running.stop()
        resp = await request
        doc = await resp.json()
    assert resp.status == 503 and doc["error"]["code"] == "server_shutting_down"


async def test_an_idle_keep_alive_connection_is_closed_at_once(fakes, monkeypatch):
    """A pooled client's next request on an idle connection waited out the whole drain unanswered (aiohttp ignores
    what a connection told to close sends); closed at once, the client reconnects and finds the port closed."""
    monkeypatch.setattr(drain, "DRAIN_S", 5.0)
    up = await fakes()
    resume = asyncio.Event()  # the stream holds the drain open until the late request was answered
    up.push(Step(sse=[chunk("m", {"content": f"{i} "}) for i in range(100)], pause_after=1, resume=resume))
    running = await start(create_app(parse_config(CFG.format(url=up.url))))
    path, body = ROUTES["chat"]
    async with aiohttp.ClientSession() as pooled, aiohttp.ClientSession() as other:
        async with pooled.get(running.url + "/health") as resp:
            assert resp.status == 200  # its connection now idles in the pool
        async with other.post(running.url + path, json={**body, "stream": True}) as streaming:
            await streaming.content.readline()
            stopping = asyncio.create_task(running.stop())
            await asyncio.sleep(0.3)
            with pytest.raises(aiohttp.ClientError):
                async with pooled.post(running.url + path, json=body) as late:
                    await late.read()
            resume.set()
            rest = (await streaming.read()).decode()
    await stopping
    # refused while the drain still waited for the paused stream: waiting the drain out would have cut that stream
    assert '"99 "' in rest and rest.rstrip().endswith("data: [DONE]"), rest[-300:]
