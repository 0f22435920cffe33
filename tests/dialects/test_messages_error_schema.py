"""The Messages routes' error bodies as router/openapi.yaml documents them: Anthropic's shape, the request named at
the top level (`request_id`, as Anthropic's own errors and the `request-id` header name it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import yaml

from tests.dialects.conftest import CFG

SPEC: dict[str, Any] = yaml.safe_load((Path(__file__).resolve().parents[2] / "router" / "openapi.yaml").read_text())
SCHEMA = SPEC["components"]["schemas"]["AnthropicError"]


async def _error(url: str, path: str, data: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + path, data=data,
                                                    headers={"Content-Type": "application/json"}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def test_the_schema_names_the_request():
    assert "request_id" in SCHEMA["required"] and SCHEMA["properties"]["request_id"]["type"] == "string"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


async def test_the_routes_errors_are_as_documented(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    ask = [{"role": "user", "content": "hi"}]
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        for data in (b"{not json", b'{"model": "m", "messages": "no"}',
                     json.dumps({"model": "nope", "max_tokens": 5, "messages": ask}).encode()):
            status, headers, doc = await _error(r.url, path, data)
            assert status in (400, 404)
            jsonschema.validate(doc, SCHEMA)
            assert doc["request_id"] == headers["request-id"]

