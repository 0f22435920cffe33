"""An `item_reference` to an item of a stored Response whose stream still runs: its items are not stored until it
ends, and the reference was told the item was not found (404), while a GET of the response lists it. It is a 400
now saying the response is still in progress (as a `previous_response_id` naming it is refused); once the
response ended, the same reference is taken."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.dialects.conftest import CFG
from tests.dialects.test_responses_in_flight import KEYS, stream_until
from tests.fakes.openai_upstream import Step, completion, stream_of


async def _refer(s: aiohttp.ClientSession, url: str, ref: str, key: str = "sk-a") -> tuple[int, dict[str, Any]]:
    body = {"model": "m", "input": [{"type": "item_reference", "id": ref}, {"role": "user", "content": "more"}]}
    async with s.post(url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
        doc: dict[str, Any] = await resp.json()
        return resp.status, doc


async def test_an_item_of_a_response_still_streaming_is_a_400_saying_so(fakes, router):
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=resume))
    up.push(Step(json=completion("Again.", "m")), Step(json=completion("Again.", "m")))
    r = await router(KEYS + CFG.format(url=up.url))
    auth = {"Authorization": "Bearer sk-a"}
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/responses", json={"model": "m", "input": "hi", "stream": True},
                          headers=auth) as resp:
            resp_id, output_id = await stream_until(resp, " wor")
            async with s.get(f"{r.url}/v1/responses/{resp_id}/input_items", headers=auth) as listed:
                input_id = (await listed.json())["data"][0]["id"]
            for ref in (output_id, input_id):
                status, doc = await _refer(s, r.url, ref)
                assert status == 400, doc
                err = doc["error"]
                assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", "input",
                                                                    "item_in_progress"), err
                assert ref in err["message"] and resp_id in err["message"] and "in progress" in err["message"]
            status, doc = await _refer(s, r.url, output_id, "sk-b")  # another key's: no such item
            assert status == 404, doc
            assert len(up.requests) == 1
            resume.set()
            await resp.read()
        for ref in (output_id, input_id):
            status, doc = await _refer(s, r.url, ref)
            assert status == 200, doc
    assert len(up.requests) == 3
    assert up.requests[1].body["messages"][0] == {"role": "assistant", "content": "Hello world"}
    assert up.requests[2].body["messages"][0] == {"role": "user", "content": "hi"}
