"""Every answer says `Server: agentgate`, not aiohttp's and Python's versions (`Python/3.11 aiohttp/3.x`, what a
scanner matches against advisories): routes, streams, the router's errors and aiohttp's own (a malformed request's
400), with nothing added on the request path."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeUpstream

KEY = "sk-client-server-header-1"


def config(url: str) -> str:
    return f"""
server: {{api_keys: [{KEY}], max_body_mb: 0.01}}
providers:
  up: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: up}}
"""


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), [
    ("POST", "/v1/chat/completions", CHAT, AUTH, 200),
    ("POST", "/v1/chat/completions", {**CHAT, "stream": True}, AUTH, 200),
    ("POST", "/v1/messages", {**CHAT, "max_tokens": 5}, AUTH, 200),
    ("POST", "/v1/chat/completions", CHAT, {}, 401),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "nope"}, AUTH, 404),
    ("POST", "/v1/chat/completions", {**CHAT, "pad": "x" * 20000}, AUTH, 413),
    ("POST", "/v1/chat/completions", {**CHAT, "stream": "yes"}, AUTH, 400),
    ("GET", "/v1/chat/completions", None, AUTH, 405),
    ("GET", "/nowhere", None, AUTH, 404),
    ("GET", "/health", None, {}, 200),
    ("GET", "/v1/models", None, AUTH, 200),
    ("GET", "/metrics", None, {}, 200),
    ("GET", "/ui", None, {}, 401),
])
async def test_every_answer_names_agentgate_only(fakes, router, method, path, body, headers, status) -> None:
    up: FakeUpstream = await fakes()
    r = await router(config(up.url))
    async with aiohttp.ClientSession() as s, s.request(method, r.url + path, json=body, headers=headers) as resp:
        await resp.read()
        assert resp.status == status
        assert resp.headers.getall("Server") == ["agentgate"]


@pytest.mark.parametrize("head", [
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",  # the HTTP parser's 400
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",  # a header past its limit
])
async def test_aiohttps_own_error_pages_name_agentgate_only(fakes, router, head: bytes) -> None:
    up: FakeUpstream = await fakes()
    r = await router(config(up.url))
    host, port = r.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1].startswith(b"4"), answer[:200]
    lines = rest.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert [line for line in lines if line.lower().startswith(b"server:")] == [b"Server: agentgate"], answer[:400]


async def test_naming_the_server_adds_nothing_to_a_request(fakes, router) -> None:
    """No middleware (aiohttp adds two coroutine layers and a cache look-up for one) and no other prepare hook than
    the one the router had: the name is aiohttp's default for the Server header, written as before."""
    up: FakeUpstream = await fakes()
    r = await router(config(up.url))
    assert len(r.app.middlewares) == 0
    assert [h.__name__ for h in r.app.on_response_prepare] == ["_unread_body_not_inflated"]
