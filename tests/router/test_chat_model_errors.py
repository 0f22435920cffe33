"""A chat, completions or embeddings request without `model` (absent, null or empty) is OpenAI's 400 "you must
provide a model parameter", `param` and `code` null; a `model` of another type is OpenAI's `invalid_type` naming
it. Both were the router's own "'model' is required and must be a non-empty string." (code `invalid_model`)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}'}}
models:
  - {{name: m, provider: lab}}
"""
PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


async def _refused(url: str, body: bytes) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.post(url, data=body,
                                                    headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400, await resp.text()
        doc: dict[str, Any] = await resp.json()
    assert set(doc) == {"error"}, doc
    error: dict[str, Any] = doc["error"]
    return error


@pytest.mark.parametrize("body", [b"{}", b'{"model": null}', b'{"model": ""}'])
async def test_no_model_is_openai_s_400(fakes, router, body: bytes) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for path in PATHS:
        err = await _refused(r.url + path, body)
        assert err == {"message": "you must provide a model parameter", "type": "invalid_request_error",
                       "param": None, "code": None}, path
    assert not up.requests


@pytest.mark.parametrize(("body", "got"), [(b'{"model": 5}', "an integer"), (b'{"model": ["m"]}', "an array"),
                                           (b'{"model": {"name": "m"}}', "an object"),
                                           (b'{"model": true}', "a boolean")])
async def test_a_model_of_another_type_is_invalid_type(fakes, router, body: bytes, got: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for path in PATHS:
        err = await _refused(r.url + path, body)
        assert err == {"message": f"Invalid type for 'model': expected a string, but got {got} instead.",
                       "type": "invalid_request_error", "param": "model", "code": "invalid_type"}, path
    assert not up.requests
