"""A compressed request body the router answers without reading (a 401, a 404) is not inflated after the answer:
a few hundred kilobytes that inflate to gigabytes would otherwise cost a core for as long as aiohttp lingers."""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from router.app import Running, create_app, start
from router.config import parse_config
from tests.fakes.openai_upstream import FakeUpstream

CLIENT_KEY = "sk-client-bodies-93c1"
INFLATED = 128 << 20  # what the bomb inflates to


@functools.cache
def _bomb() -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    block = b"0" * (1 << 20)
    return b"".join([z.compress(b'{"model": "m", "messages": "'), *(z.compress(block) for _ in range(INFLATED >> 20)),
                     z.flush()])


class Served:
    def __init__(self, running: Running, bodies: list[aiohttp.StreamReader]) -> None:
        self.running, self.url, self.bodies = running, running.url, bodies


@pytest.fixture
async def served(fakes) -> AsyncIterator[Served]:
    up: FakeUpstream = await fakes()
    app = create_app(parse_config(f"""
server: {{api_keys: [{CLIENT_KEY}]}}
providers:
  up: {{type: openai, base_url: '{up.url}', retries: 0}}
models:
  - {{name: m, provider: up}}
""", env={}))
    bodies: list[aiohttp.StreamReader] = []

    async def note(request: web.Request, response: web.StreamResponse) -> None:
        bodies.append(request.content)  # what aiohttp inflated of each request's body, counted as it is fed

    app.on_response_prepare.append(note)
    running = await start(app)
    yield Served(running, bodies)
    await running.stop()


async def _exchange(url: str, head: bytes, body: bytes) -> bytes:
    """Send one request over a fresh connection; everything read until the router closes it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    got = b""
    try:
        writer.write(head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        writer.write(body)
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), 30):
            got += chunk
    except ConnectionError:  # closed with the rest of the body unread: a reset, after the answer was written
        pass
    finally:
        writer.close()
    return got


@pytest.mark.parametrize(("path", "key"), [("/v1/chat/completions", "sk-wrong"), ("/v1/nothing-here", CLIENT_KEY)])
async def test_a_compressed_body_left_unread_is_not_inflated_after_the_answer(served, path, key):
    head = (f"POST {path} HTTP/1.1\r\nHost: {served.url.removeprefix('http://')}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\nConnection: close\r\n").encode()
    got = await _exchange(served.url, head, _bomb())
    assert got == b"" or got.split(b" ", 2)[1] in (b"401", b"404")
    assert served.bodies and served.bodies[-1].total_bytes < 16 << 20, served.bodies[-1].total_bytes


async def test_a_small_compressed_body_still_gets_its_answer_on_a_kept_connection(served):
    body = zlib.compress(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')
    headers = {"Authorization": "Bearer sk-wrong", "Content-Type": "application/json", "Content-Encoding": "deflate"}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as s:
        for _ in range(2):
            async with s.post(served.url + "/v1/chat/completions", data=body, headers=headers) as resp:
                assert resp.status == 401 and "error" in await resp.json()
    assert len(served.bodies) == 2
