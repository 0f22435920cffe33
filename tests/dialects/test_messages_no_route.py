"""A path or method no route takes, answered in Anthropic's shape (under /v1/messages, or asked with an
`anthropic-version` header), names its request as the Messages routes' own errors do: `request_id` in the body, the
`request-id` and `x-request-id` headers."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG


async def _call(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers or {}) as resp:
        return resp.status, resp.headers, await resp.json()


@pytest.mark.parametrize(("method", "path", "status", "headers"), [
    ("GET", "/v1/messages", 405, {}),
    ("DELETE", "/v1/messages/count_tokens", 405, {}),
    ("POST", "/v1/messages/unknown", 404, {}),
    ("POST", "/v1/nope", 404, {"anthropic-version": "2023-06-01"}),
])
async def test_no_route_names_its_request(fakes, router, method, path, status, headers):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    got, resp_headers, doc = await _call(method, r.url + path, headers)
    assert got == status and doc["type"] == "error" and doc["error"]["message"]
    assert doc["request_id"] == resp_headers["request-id"] == resp_headers["x-request-id"]
    got, resp_headers, doc = await _call(method, r.url + path, {**headers, "x-request-id": "req_given-2"})
    assert got == status and doc["request_id"] == resp_headers["request-id"] == "req_given-2"


async def test_an_openai_shaped_one_is_as_it_was(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    status, _, doc = await _call("POST", r.url + "/v1/nope")
    assert status == 404 and set(doc) == {"error"} and doc["error"]["code"] == "not_found"
