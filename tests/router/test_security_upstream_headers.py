"""What the router writes on the wire to a provider: each credential once, and the message framing its own, whatever
the provider's configured headers say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from router.app import create_app, start
from router.config import parse_config
from tests.fakes.openai_upstream import completion
from tests.started import started

PROVIDER_KEY = "sk-provider-key-7e1d90"
CONFIGURED = "Bearer configured-token-5a2c"


class WireUpstream:
    """An upstream on 127.0.0.1 that records each request's head and body as they came on the wire (one request
    per connection) and answers a chat completion (an Anthropic message on /messages)."""

    def __init__(self) -> None:
        self.heads: list[list[tuple[str, str]]] = []
        self.bodies: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def headers(self, name: str, at: int = -1) -> list[str]:
        """Every value of header `name` (any case) in request `at`."""
        return [v for k, v in self.heads[at] if k.lower() == name.lower()]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")[1:-2]
            fields = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
            self.heads.append(fields)
            body = await self._body(reader, fields)
            self.bodies.append(body)
            path = head.split(b" ", 2)[1]
            answer = _anthropic_message() if path.endswith(b"/messages") else completion("fine", "m")
            data = json.dumps(answer).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
            await writer.drain()
        finally:
            writer.close()

    @staticmethod
    async def _body(reader: asyncio.StreamReader, fields: list[tuple[str, str]]) -> bytes:
        names = {k.lower(): v for k, v in fields}
        if "chunked" in names.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                out += (await reader.readexactly(size + 2))[:size]
                if size == 0:
                    return out
        return await reader.readexactly(int(names.get("content-length", "0")))


def _anthropic_message() -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "fine"}], "usage": {"input_tokens": 1, "output_tokens": 1}}


@pytest.fixture
async def wire() -> AsyncIterator[Callable[[], Awaitable[WireUpstream]]]:
    async with started(WireUpstream) as make:
        yield make


def _config(url: str, kind: str, headers: str) -> str:
    return f"""
providers:
  up: {{type: {kind}, base_url: '{url}', api_key: {PROVIDER_KEY}, retries: 0, headers: {{{headers}}}}}
models:
  - {{name: m, provider: up}}
"""


async def _chat(url: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
        await resp.read()
        return resp.status


@pytest.mark.parametrize(("kind", "header", "credential"), [
    ("openai", "authorization", f"Bearer {PROVIDER_KEY}"),
    ("anthropic", "X-API-KEY", PROVIDER_KEY),
])
async def test_a_configured_header_named_as_the_credential_in_another_case_is_not_sent_beside_it(
        wire, kind, header, credential):
    """Such a config is refused at load (`tests/ops/test_security_credential_header.py`); one built otherwise (the
    key set after loading) still sends one credential header."""
    up = await wire()
    config = parse_config(_config(up.url, kind, f"{header}: '{CONFIGURED}'").replace(f"api_key: {PROVIDER_KEY}, ",
                                                                                      ""), env={})
    keyed = replace(config.providers["up"], api_key=PROVIDER_KEY)
    running = await start(create_app(replace(config, providers={**config.providers, "up": keyed})))
    try:
        assert await _chat(running.url) == 200
    finally:
        await running.stop()
    assert up.headers(header) == [credential]  # once: the provider's own credential


async def test_configured_headers_never_set_the_framing_of_a_request(wire, router, caplog):
    up = await wire()
    framing = "Content-Length: '5', Transfer-Encoding: chunked, Connection: keep-alive, Upgrade: h2c, TE: trailers"
    r = await router(_config(up.url, "openai", f"{framing}, X-Team: research"))
    assert await _chat(r.url) == 200
    assert up.headers("X-Team") == ["research"]  # what is no framing is sent as configured
    for name in ("Transfer-Encoding", "Upgrade", "TE"):
        assert up.headers(name) == [], name
    assert up.headers("Connection") in ([], ["keep-alive"])  # (aiohttp's own, if any)
    body = up.bodies[-1]
    assert up.headers("Content-Length") == [str(len(body))]  # the whole body, no 5 bytes of it with a rest that
    assert json.loads(body)["messages"][0]["content"] == "hello"  # an upstream would read as a request of its own
    said = [r.getMessage() for r in caplog.records if r.name == "agentgate" and "provider up:" in r.getMessage()]
    assert said and "Content-Length" in said[0] and "X-Team" not in said[0]  # the operator is told which went
