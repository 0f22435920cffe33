"""`POST /v1/responses/{id}/cancel`, as OpenAI answers it: only a background response can be cancelled, and none is
made here, so a stored response, or one still streaming, is OpenAI's 400 for a synchronous one (the stream runs
on to its end, stored as it would have been); an id naming no response of the key is the 404 of a read."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest

from router.api.responses import RESPONSE_STORE
from tests.dialects.conftest import CFG
from tests.dialects.test_responses_in_flight import KEYS, _events_until
from tests.fakes.openai_upstream import Step, completion, stream_of
from tests.reliability.test_openapi import validate

SYNCHRONOUS = "Cannot cancel a synchronous response."


async def _cancel(url: str, resp_id: str, key: str = "sk-a") -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/responses/{resp_id}/cancel",
                                                    headers={"Authorization": f"Bearer {key}"}) as resp:
        doc = await resp.json()
        validate(doc, "Error")
        return resp.status, doc["error"]


async def test_a_stored_response_is_openai_s_400_for_a_synchronous_one(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    r = await router(KEYS + CFG.format(url=up.url))
    done = await r.client("sk-a").responses.create(model="m", input="hi")
    status, err = await _cancel(r.url, done.id)
    assert (status, err["type"], err["message"], err["param"]) == (400, "invalid_request_error", SYNCHRONOUS, None)
    with pytest.raises(openai.BadRequestError):  # (as the openai SDK reads it)
        await r.client("sk-a").responses.cancel(done.id)
    assert (await r.client("sk-a").responses.retrieve(done.id)).status == "completed"  # unchanged
    assert len(up.requests) == 1


async def test_an_unknown_or_another_key_s_response_is_a_404(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    up.push(Step(json=completion("Hello", "m")))
    r = await router(KEYS + CFG.format(url=up.url))
    mine = await r.client("sk-a").responses.create(model="m", input="hi")
    unstored = await r.client("sk-a").responses.create(model="m", input="hi", store=False)
    for resp_id, key in (("resp_nothing", "sk-a"), (mine.id, "sk-b"), (unstored.id, "sk-a"), ("x" * 5000, "sk-a")):
        status, err = await _cancel(r.url, resp_id, key)
        async with aiohttp.ClientSession() as s, s.get(f"{r.url}/v1/responses/{resp_id}",
                                                        headers={"Authorization": f"Bearer {key}"}) as read:
            assert (status, err) == (read.status, (await read.json())["error"])  # (as a read answers it)
        assert (status, err["code"], err["type"]) == (404, None, "invalid_request_error"), err
        assert len(str(err["message"])) < 200
    with pytest.raises(openai.NotFoundError):
        await r.client("sk-a").responses.cancel("resp_nothing")


async def test_a_response_still_streaming_is_the_same_400_and_runs_on(fakes, router):
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    r = await router(KEYS + CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body,
                                                    headers={"Authorization": "Bearer sk-a"}) as resp:
        resp_id = await _events_until(resp, " wor")
        status, err = await _cancel(r.url, resp_id)
        assert (status, err["message"]) == (400, SYNCHRONOUS), err
        other, _ = await _cancel(r.url, resp_id, "sk-b")
        assert other == 404
        resume.set()
        text = (await resp.read()).decode()
    assert "response.completed" in text
    done = await r.client("sk-a").responses.retrieve(resp_id)
    assert done.status == "completed" and done.output_text == "Hello world"
    assert not r.app[RESPONSE_STORE].live
