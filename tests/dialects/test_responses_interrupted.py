"""A stored Responses stream whose client leaves before it ends: kept as far as it went, `incomplete`."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from router.api.responses import RESPONSE_STORE
from router.dialects.common import estimate_tokens
from tests.dialects.conftest import CFG, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of
from tests.waiting import wait_until


async def _leave_after_text(url: str, body: dict[str, object], text: str,
                           headers: dict[str, str] | None = None) -> str:
    """Open a Responses stream, read until a delta carrying `text` came, leave; the response's id."""
    resp_id = ""
    async with aiohttp.ClientSession(headers=headers) as s:
        resp = await s.post(url + "/v1/responses", json=body)
        while True:
            block = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)).decode()
            data = json.loads(block.split("data: ", 1)[1])
            if data["type"] == "response.created":
                resp_id = data["response"]["id"]
            if data["type"] == "response.output_text.delta" and data["delta"] == text:
                break
        resp.close()  # the client goes away mid-stream
    return resp_id


async def test_a_stream_left_mid_way_is_stored_incomplete_and_continues(fakes, router):
    """A streamed Response with `store` whose client left before `response.completed` was never stored: a later
    `previous_response_id` naming it (the id came in `response.created`) got 400 not found. It is now stored with
    what was streamed, `incomplete`, and can be read and continued."""
    up = await fakes()
    resume = asyncio.Event()  # never set: the upstream holds the rest
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume),
            Step(json=completion("Again.", "m")))
    r = await router(CFG.format(url=up.url))
    resp_id = await _leave_after_text(r.url, {"model": "m", "input": "hi", "stream": True}, " wor")
    assert resp_id.startswith("resp_")
    await asyncio.wait_for(up.cancelled_event.wait(), 10)
    holder = r.app[RESPONSE_STORE]
    await wait_until(lambda: holder.store is not None and holder.store.count() == 1)
    c = r.client()
    got = await c.responses.retrieve(resp_id)
    assert got.status == "incomplete" and got.output_text == "Hello wor"
    assert got.output[0].status == "incomplete"
    listed = await c.responses.input_items.list(resp_id)
    assert [(i.type, i.role) for i in listed.data] == [("message", "user")]  # type: ignore[union-attr]
    nxt = await c.responses.create(model="m", input="go on", previous_response_id=resp_id)
    assert nxt.output_text == "Again."
    assert up.requests[1].body["messages"] == [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "Hello wor"},
                                               {"role": "user", "content": "go on"}]


async def test_a_stream_left_mid_way_without_store_is_not_stored(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=asyncio.Event()))
    r = await router(CFG.format(url=up.url))
    resp_id = await _leave_after_text(r.url, {"model": "m", "input": "hi", "stream": True, "store": False}, " wor")
    await asyncio.wait_for(up.cancelled_event.wait(), 10)
    await asyncio.sleep(0.05)
    with pytest.raises(openai.NotFoundError):
        await r.client().responses.retrieve(resp_id)


async def test_a_call_cut_by_the_client_leaving_is_not_continued(fakes, router):
    """A call whose arguments were still coming when the client left is left out of the stored Response and of
    the conversation a `previous_response_id` continues: no result can follow a call the client never had. Its
    usage, estimated where the upstream reported none, counts what was kept (it counted the call left out too)."""
    up = await fakes()
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": "Checking."}),
                      chunk("m", {"tool_calls": [call]}),
                      chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
                      chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}, "tool_calls")],
                 pause_after=3, resume=asyncio.Event()),
            Step(json=completion("Again.", "m")))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True, "tools": [RESPONSES_WEATHER]}
    resp_id = ""
    async with aiohttp.ClientSession() as s:
        resp = await s.post(r.url + "/v1/responses", json=body, headers={"x-agentgate-repair": "off"})
        while True:
            data = json.loads((await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)).decode()
                              .split("data: ", 1)[1])
            resp_id = resp_id or data["response"]["id"]
            if data["type"] == "response.function_call_arguments.delta":
                break
        resp.close()
    holder = r.app[RESPONSE_STORE]
    await wait_until(lambda: holder.store is not None and holder.store.count() == 1)
    c = r.client()
    got = await c.responses.retrieve(resp_id)
    assert got.status == "incomplete" and [(o.type, o.status) for o in got.output] == [("message", "completed")]
    assert got.usage is not None and got.usage.output_tokens == estimate_tokens(len(b"Checking."))
    listed = await c.responses.input_items.list(resp_id)
    assert [(i.type, i.role) for i in listed.data] == [("message", "user")]  # type: ignore[union-attr]
    await c.responses.create(model="m", input="go on", previous_response_id=resp_id)
    assert up.requests[1].body["messages"][1:] == [{"role": "assistant", "content": "Checking."},
                                                   {"role": "user", "content": "go on"}]


async def test_a_read_while_a_left_stream_is_being_stored_waits_for_it(fakes, router, monkeypatch):
    """A left stream is stored in a task of its own: a GET (or a `previous_response_id`, or a DELETE) of its id
    that came while that save was still running found nothing (404; a DELETE's was undone by the save). Such a
    request now waits for the save of that id."""
    from router.store import ResponseStore

    gate = asyncio.Event()
    put = ResponseStore.put

    async def held_put(self: ResponseStore, item: object) -> None:
        await gate.wait()
        await put(self, item)  # type: ignore[arg-type]

    monkeypatch.setattr(ResponseStore, "put", held_put)
    up = await fakes()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=asyncio.Event()),
            Step(json=completion("Again.", "m")))
    r = await router(CFG.format(url=up.url))
    resp_id = await _leave_after_text(r.url, {"model": "m", "input": "hi", "stream": True}, " wor")
    holder = r.app[RESPONSE_STORE]
    await wait_until(lambda: len(holder.pending) == 1)
    c = r.client()
    got = asyncio.create_task(c.responses.retrieve(resp_id))
    try:
        done, _ = await asyncio.wait({got}, timeout=0.3)
        assert not done  # it waits for the save
    finally:
        gate.set()
    assert (await asyncio.wait_for(got, 10)).status == "incomplete"
