"""Reads of a stored Response (`GET /v1/responses/{id}` and its `input_items`): what they answer when the response
cannot be given as asked."""

from __future__ import annotations

import aiohttp

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
