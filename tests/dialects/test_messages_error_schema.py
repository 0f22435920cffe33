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
from tests.fakes.anthropic_upstream import API_KEY, AStep, error_doc, stream_events

NATIVE = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""

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


async def test_an_anthropic_providers_verdict_names_the_request(fake_anthropic, router):
    """A verdict passed on as it came keeps the provider's id for the request (Anthropic's support knows it by
    that one); one without an id (an Anthropic-compatible server's) gets the router's."""
    fake = await fake_anthropic()
    r = await router(NATIVE.format(url=fake.url, key=API_KEY))
    fake.push(AStep(status=400, json={**error_doc("invalid_request_error", "bad"), "request_id": "req_011Up"}))
    fake.push(AStep(status=400, json=error_doc("invalid_request_error", "bad")))
    body = json.dumps({"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).encode()
    for rid in ("req_011Up", None):
        status, headers, doc = await _error(r.url, "/v1/messages", body)
        assert status == 400
        jsonschema.validate(doc, SCHEMA)
        assert doc["request_id"] == (rid or headers["request-id"])


async def test_an_anthropic_providers_error_event_names_the_request(fake_anthropic, router):
    """An error event mid-stream as Anthropic's stream documentation shows one names no request (`{"type": "error",
    "error": {...}}`); passed on, it names the router's, as the translated route's error events do."""
    fake = await fake_anthropic()
    r = await router(NATIVE.format(url=fake.url, key=API_KEY))
    start = stream_events([{"type": "text", "text": "Hi"}], "claude-sonnet-4-5")[:2]
    fake.push(AStep(events=[*start, ("error", error_doc("overloaded_error", "Overloaded"))]))
    body = {"model": "sonnet", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json=body) as resp:
        assert resp.status == 200
        rid = resp.headers["request-id"]
        last = (await resp.read()).decode().strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    doc = json.loads(last.split("data: ", 1)[1])
    assert doc == {**error_doc("overloaded_error", "Overloaded"), "request_id": rid}
