"""`item_reference` input items naming what a stored Response holds."""

from __future__ import annotations

import aiohttp

from tests.dialects.conftest import CFG
from tests.dialects.test_responses import raw_stream
from tests.fakes.openai_upstream import Step, completion, stream_of


async def test_an_output_item_of_a_failed_response_is_refused_naming_it(fakes, router):
    """An output item of a response stored `failed` (its answer never ended: the item was closed `incomplete`
    where the failure cut it) was taken as an `item_reference` and sent on as if whole, where a
    `previous_response_id` naming that response is refused: it is refused alike now, a 400 naming the input and
    the item. Its input items, which the client sent whole, can still be referenced."""
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b", "c", "d"], "m"), reset_after=2), Step(json=completion("Fine.", "m")))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True})
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["output"]
    cut = failed["output"][0]["id"]
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "input": [{"type": "item_reference", "id": cut}, {"role": "user", "content": "more"}]}
        async with s.post(r.url + "/v1/responses", json=body) as resp:
            assert resp.status == 400
            err = (await resp.json())["error"]
        assert err["param"] == "input" and err["type"] == "invalid_request_error" and cut in err["message"], err
        assert failed["id"] in err["message"] and "failed" in err["message"]
        async with s.get(r.url + f"/v1/responses/{failed['id']}/input_items") as listed:
            asked = (await listed.json())["data"][0]["id"]
        body = {"model": "m", "input": [{"type": "item_reference", "id": asked}]}
        async with s.post(r.url + "/v1/responses", json=body) as resp:
            assert resp.status == 200, await resp.text()
    assert len(up.requests) == 2 and up.requests[1].body["messages"] == [{"role": "user", "content": "hi"}]


async def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        return resp.status, await resp.json()


async def test_an_item_already_in_the_continued_conversation_is_a_duplicate(fakes, router):
    """An `item_reference` to an item of the conversation `previous_response_id` continues (of that response or
    one before it in its chain) put the item before the model twice, and so did one id referenced twice: OpenAI
    answers both with a 400 ("Duplicate item found with id ..."), and so does the router now, naming the input.
    The same reference without `previous_response_id` is the way to send it again."""
    up = await fakes()
    up.push(Step(json=completion("One.", "m")), Step(json=completion("Two.", "m")),
            Step(json=completion("Three.", "m")))
    r = await router(CFG.format(url=up.url))
    status, first = await _post(r.url, {"model": "m", "input": "a"})
    status, second = await _post(r.url, {"model": "m", "input": "b", "previous_response_id": first["id"]})
    assert status == 200
    one = first["output"][0]["id"]  # type: ignore[index]
    two = second["output"][0]["id"]  # type: ignore[index]
    for previous, ref in ((second["id"], two), (second["id"], one), (first["id"], one)):
        body = {"model": "m", "previous_response_id": previous,
                "input": [{"type": "item_reference", "id": ref}, {"role": "user", "content": "c"}]}
        status, doc = await _post(r.url, body)
        err = doc["error"]
        assert status == 400 and err["param"] == "input" and ref in err["message"], (previous, ref, doc)  # type: ignore[index,operator]
        assert "Duplicate item" in err["message"]  # type: ignore[index,operator]
    status, doc = await _post(r.url, {"model": "m", "input": [{"type": "item_reference", "id": one}] * 2})
    assert status == 400 and one in doc["error"]["message"], doc  # type: ignore[index,operator]
    status, _ = await _post(r.url, {"model": "m", "input": [{"type": "item_reference", "id": one},
                                                            {"role": "user", "content": "c"}]})
    assert status == 200 and len(up.requests) == 3
