"""Reads of a stored Response (`GET /v1/responses/{id}` and its `input_items`): what they answer when the response
cannot be given as asked."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from router.api.responses import RESPONSE_STORE
from tests.dialects.conftest import CFG


async def test_a_too_large_stored_response_is_a_400_that_fits_a_read(fakes, router):
    """A GET of a response stored under a higher bound was told to "send the conversation as input", advice for
    a `previous_response_id` that a read has no use for: it now says the response is too large to be read, and a
    request continuing it still gets the advice."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/responses", json={"model": "m", "input": [{"role": "user", "content": "y"}]
                                                         * 60}) as made:
            resp_id = (await made.json())["id"]
        (await r.app[RESPONSE_STORE].get()).max_containers = 50
        for tail in ("", "/input_items"):
            async with s.get(r.url + f"/v1/responses/{resp_id}{tail}") as got:
                assert got.status == 400
                err = (await got.json())["error"]
            assert err["code"] == "previous_response_too_large" and err["param"] is None
            assert "as input" not in err["message"] and "cannot be read" in err["message"], err["message"]
        body = {"model": "m", "input": "z", "previous_response_id": resp_id}
        async with s.post(r.url + "/v1/responses", json=body) as again:
            assert again.status == 400
            err = (await again.json())["error"]
        assert err["param"] == "previous_response_id" and "Send the conversation as input" in err["message"]
    assert len(up.requests) == 1


async def test_a_stream_of_a_stored_response_is_a_400_naming_stream(fakes, router):
    """`GET /v1/responses/{id}?stream=true` (the SDK's `retrieve(id, stream=True)`) answered the Response as JSON,
    which a client expecting events cannot read: OpenAI streams only a background response again, and none is
    made here, so it is a 400 naming `stream`; `stream=false` is a plain read, another value a 400 too, and an id
    never stored is still a 404."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    made = await c.responses.create(model="m", input="hi")
    async with aiohttp.ClientSession() as s:
        for query, status in (("stream=true", 400), ("stream=true&starting_after=3", 400), ("stream=1", 400),
                              ("stream=false", 200)):
            async with s.get(r.url + f"/v1/responses/{made.id}?{query}") as got:
                assert got.status == status and got.content_type == "application/json", query
                doc = await got.json()
            if status == 400:
                assert doc["error"]["param"] == "stream" and doc["error"]["type"] == "invalid_request_error", doc
            else:
                assert doc["id"] == made.id
        async with s.get(r.url + "/v1/responses/resp_unknown?stream=true") as got:
            assert got.status == 404
    with pytest.raises(openai.BadRequestError) as bad:
        await c.responses.retrieve(made.id, stream=True)
    assert bad.value.param == "stream" and "background" in bad.value.message
