"""Errors no route turned into an answer, answered without an app middleware: no such route (404), a wrong method
(405 with Allow), an unexpected failure (500, logged) — JSON in the route's shape, as before."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from router.api import health, messages, openai_routes

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}'}}
models:
  - {{name: m, provider: lab}}
"""


async def _get(method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_no_route_and_wrong_method(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    assert r.app.middlewares == () or not r.app.middlewares
    status, _, doc = await _get("POST", r.url + "/v1/nope")
    assert status == 404 and doc["error"]["code"] == "not_found" and "POST /v1/nope" in doc["error"]["message"]
    status, _, doc = await _get("GET", r.url + "/v1/messages/nope")
    assert status == 404 and doc["type"] == "error" and doc["error"]["type"] == "not_found_error"
    status, headers, doc = await _get("GET", r.url + "/v1/chat/completions")
    assert status == 405 and headers["Allow"] == "POST" and doc["error"]["code"] == "method_not_allowed"
    status, headers, doc = await _get("DELETE", r.url + "/health")
    assert status == 405 and set(headers["Allow"].split(",")) == {"GET", "HEAD"}
    status, _, doc = await _get("GET", r.url + "/health")
    assert status == 200


@pytest.mark.parametrize("route", ["proxy", "plain"])
async def test_an_unexpected_failure_is_a_logged_500(fakes, router, monkeypatch, caplog, route):
    up = await fakes()

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    if route == "proxy":
        monkeypatch.setattr(openai_routes.common, "require_model", boom)
        method, path, kw = "POST", "/v1/chat/completions", {"json": {"model": "m", "messages": []}}
    else:
        monkeypatch.setattr(health.auth, "client_key", boom)
        method, path, kw = "GET", "/ready", {}
    r = await router(CFG.format(url=up.url))
    seen: list[object] = []
    r.state.metrics.request_observers.append(lambda ex, fields: seen.append(fields["status"]))
    with caplog.at_level(logging.ERROR, logger="agentgate"):
        status, _, doc = await _get(method, r.url + path, **kw)
    assert status == 500 and doc["error"]["code"] == "internal_error" and "boom" not in str(doc)
    assert any(rec.exc_info and "boom" in str(rec.exc_info[1]) for rec in caplog.records)
    assert seen == ([500] if route == "proxy" else [])


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_an_unexpected_failure_on_the_messages_routes_is_anthropic_shaped(fakes, router, monkeypatch, path):
    """Anthropic's shape for every status on the Messages routes, the 500 included (its SDK reads no other)."""
    up = await fakes()

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(messages.dialect, "parse_request", boom)
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    status, _, doc = await _get("POST", r.url + path, json=body, headers={"anthropic-version": "2023-06-01"})
    assert status == 500 and "boom" not in str(doc)
    assert doc == {"type": "error", "error": {"type": "api_error", "message": doc["error"]["message"]},
                   "request_id": doc["request_id"]}  # (the request's, as Anthropic's own errors name it)
    assert doc["error"]["message"] and doc["request_id"]

