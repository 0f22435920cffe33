"""An id naming no stored response of the key, on `GET`, `DELETE`, `POST .../cancel` and `GET .../input_items`
of `/v1/responses/{id}`: OpenAI's 404 for it, an `invalid_request_error` "Response with id '<id>' not found.",
`param` and `code` null (the router's `response_not_found` names it in its logs and metrics only)."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from tests.dialects.conftest import CFG
from tests.dialects.test_responses_in_flight import KEYS
from tests.fakes.openai_upstream import Step, completion
from tests.reliability.test_openapi import validate

ROUTES = (("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/input_items"))


async def _call(url: str, method: str, path: str, key: str = "sk-a") -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, url + path,
                                                       headers={"Authorization": f"Bearer {key}"}) as resp:
        doc: dict[str, Any] = await resp.json()
        validate(doc, "Error")
        return resp.status, doc["error"]


@pytest.mark.parametrize(("method", "tail"), ROUTES)
async def test_an_unknown_id_is_openai_s_404(fakes, router, method: str, tail: str) -> None:
    up = await fakes()
    r = await router(KEYS + CFG.format(url=up.url))
    status, err = await _call(r.url, method, f"/v1/responses/resp_nothing{tail}")
    assert status == 404
    assert err == {"message": "Response with id 'resp_nothing' not found.", "type": "invalid_request_error",
                   "param": None, "code": None}


async def test_another_key_s_response_and_a_long_id_are_the_same_404(fakes, router) -> None:
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    r = await router(KEYS + CFG.format(url=up.url))
    mine = await r.client("sk-a").responses.create(model="m", input="hi")
    for method, tail in ROUTES:
        status, err = await _call(r.url, method, f"/v1/responses/{mine.id}{tail}", key="sk-b")
        assert (status, err["message"], err["code"]) == (404, f"Response with id '{mine.id}' not found.", None)
        status, err = await _call(r.url, method, f"/v1/responses/{'x' * 5000}{tail}")
        assert (status, err["type"], err["code"]) == (404, "invalid_request_error", None)
        assert len(err["message"]) < 200  # (the id is not echoed whole)
    with pytest.raises(openai.NotFoundError):  # (as the openai SDK reads it)
        await r.client("sk-a").responses.retrieve("resp_nothing")
    assert (await r.client("sk-a").responses.retrieve(mine.id)).status == "completed"
