"""A stored Response read while it is still streaming: `GET /v1/responses/{id}` (and its `input_items`) answer it
`in_progress`, as OpenAI does for a response with `store`, then as stored once it ended."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
import pytest

from router.api.responses import RESPONSE_STORE
from tests.dialects.conftest import CFG
from tests.fakes.openai_upstream import Step, stream_of

KEYS = "server: {api_keys: [{key: sk-a, name: a}, {key: sk-b, name: b}]}\n"


async def stream_until(resp: aiohttp.ClientResponse, delta: str) -> tuple[str, str]:
    """Read a Responses stream up to the text delta `delta`: the Response's id (from `response.created`) and its
    open output item's."""
    resp_id = item_id = ""
    async for line in resp.content:
        if not line.startswith(b"data: "):
            continue
        data: dict[str, Any] = json.loads(line[6:])
        if data["type"] == "response.created":
            resp_id = data["response"]["id"]
        if data["type"] == "response.output_item.added":
            item_id = data["item"]["id"]
        if data["type"] == "response.output_text.delta" and data["delta"] == delta:
            return resp_id, item_id
    raise AssertionError("the stream ended early")


async def _events_until(resp: aiohttp.ClientResponse, delta: str) -> str:
    return (await stream_until(resp, delta))[0]


async def test_a_stored_stream_is_readable_in_progress_then_completed(fakes, router):
    """A GET of a `store: true` Response whose stream had not ended was a 404 (the id the client had from
    `response.created` named nothing): it is now the Response `in_progress`, to its owner only, and its input
    items are listed; once the stream ended, the Response as stored (`completed`)."""
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    r = await router(KEYS + CFG.format(url=up.url))
    mine, other = r.client("sk-a"), r.client("sk-b")
    body = {"model": "m", "input": "hi", "stream": True, "metadata": {"k": "v"}}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body,
                                                    headers={"Authorization": "Bearer sk-a"}) as resp:
        resp_id = await _events_until(resp, " wor")
        got = await mine.responses.retrieve(resp_id)
        assert (got.id, got.status, got.metadata, got.usage) == (resp_id, "in_progress", {"k": "v"}, None)
        listed = await mine.responses.input_items.list(resp_id)
        assert [(i.type, i.role) for i in listed.data] == [("message", "user")]  # type: ignore[union-attr]
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(resp_id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.input_items.list(resp_id)
        resume.set()
        await resp.read()
    done = await mine.responses.retrieve(resp_id)
    assert done.status == "completed" and done.output_text == "Hello world"
    assert not r.app[RESPONSE_STORE].live


async def test_a_stream_without_store_is_not_readable(fakes, router):
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True, "store": False}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        resp_id = await _events_until(resp, " wor")
        with pytest.raises(openai.NotFoundError):
            await r.client().responses.retrieve(resp_id)
        resume.set()
        await resp.read()


async def test_streams_readable_while_running_are_bounded(fakes, router, monkeypatch):
    """Past `MAX_LIVE` running streams, one more is read once stored (not held for reads while it runs)."""
    monkeypatch.setattr("router.api.responses.MAX_LIVE", 0)
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        resp_id = await _events_until(resp, " wor")
        assert not r.app[RESPONSE_STORE].live
        with pytest.raises(openai.NotFoundError):
            await r.client().responses.retrieve(resp_id)
        resume.set()
        await resp.read()
    assert (await r.client().responses.retrieve(resp_id)).status == "completed"


async def test_a_stream_deleted_while_running_is_never_stored(fakes, router):
    """A DELETE of a stored Response whose stream runs was a 404 (though a GET answered it `in_progress`) and the
    response was stored when it ended: it is now deleted, to its owner only, and its end stores nothing."""
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    r = await router(KEYS + CFG.format(url=up.url))
    mine, other = r.client("sk-a"), r.client("sk-b")
    body = {"model": "m", "input": "hi", "stream": True}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body,
                                                    headers={"Authorization": "Bearer sk-a"}) as resp:
        resp_id = await _events_until(resp, " wor")
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(resp_id)
        await mine.responses.delete(resp_id)
        with pytest.raises(openai.NotFoundError):
            await mine.responses.retrieve(resp_id)
        with pytest.raises(openai.NotFoundError):
            await mine.responses.delete(resp_id)
        resume.set()
        text = (await resp.read()).decode()
    assert "response.completed" in text  # (the stream itself goes on to its end)
    with pytest.raises(openai.NotFoundError):
        await mine.responses.retrieve(resp_id)
    holder = r.app[RESPONSE_STORE]
    assert holder.store is not None and holder.store.count() == 0
    assert not holder.live and not holder.deleted


async def test_continuing_a_stream_still_running_is_a_400_saying_so(fakes, router):
    """A `previous_response_id` naming a stored Response whose stream runs was told the response was not found
    (a GET answers it `in_progress`): the 400 now says it is still in progress; once it ended, it is continued."""
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/responses", json=body) as resp:
            resp_id = await _events_until(resp, " wor")
            nxt = {"model": "m", "input": "more", "previous_response_id": resp_id}
            async with s.post(r.url + "/v1/responses", json=nxt) as again:
                assert again.status == 400
                err = (await again.json())["error"]
            assert (err["param"], err["code"]) == ("previous_response_id", "previous_response_in_progress"), err
            assert "in progress" in err["message"] and resp_id in err["message"]
            resume.set()
            await resp.read()
        async with s.post(r.url + "/v1/responses", json=nxt) as again:
            assert again.status == 200
    assert len(up.requests) == 2
