"""Memory does not grow with stream length: a long stream (32 MB of text, tools declared) read by a client leaves
the router's resident memory within a few MB on the tools, Messages and Responses paths (before, the tools path
held all of it for repair, Messages all of its blocks, Responses all of its output). A Responses stream past the
output it can hold for its final object ends with a clear error."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import Step, chunk

PIECE = ("all work and no play " * 50)[:1000]
PIECES = 24 * 1024
TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}}}}]
CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def endless() -> Iterator[Any]:
    yield chunk("m", {"role": "assistant", "content": ""})
    for _ in range(PIECES):
        yield chunk("m", {"content": PIECE})
    yield chunk("m", {}, "stop")


REQUESTS = {
    "tools": ("/v1/chat/completions", {"model": "m", "stream": True, "tools": TOOLS,
                                       "messages": [{"role": "user", "content": "go"}]}),
    "messages": ("/v1/messages", {"model": "m", "stream": True, "max_tokens": 100000,
                                  "messages": [{"role": "user", "content": "go"}],
                                  "tools": [{"name": "write_file", "input_schema": {"type": "object"}}]}),
    "responses": ("/v1/responses", {"model": "m", "stream": True, "input": "go", "store": False,
                                    "tools": [{"type": "function", "name": "write_file"}]}),
}


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc")
@pytest.mark.parametrize("path", list(REQUESTS))
async def test_a_long_stream_does_not_grow_memory(fakes, router, path):
    up = await fakes()
    up.push(Step(sse=endless()))  # type: ignore[arg-type]
    r = await router(CFG.format(url=up.url))
    url, body = REQUESTS[path]
    base, peak, received, tail, seen = _rss(), 0, 0, b"", b""
    async with aiohttp.ClientSession() as s, s.post(r.url + url, json=body) as resp:
        assert resp.status == 200
        async for data in resp.content.iter_any():
            received += len(data)
            window = tail[-200:] + data
            if b"response_too_large" in window or b"response.failed" in window:
                seen += b" ".join(w for w in (b"response_too_large", b"response.failed") if w in window)
            tail = window[-4000:]
            if received % 64 == 0 or received > 1 << 20:
                peak = max(peak, _rss())
    grown = (peak - base) / 2**20
    if path == "responses":  # past what its final object can hold: a clear error, never a silent cut
        assert b"response_too_large" in seen and b"response.failed" in seen
        assert received > 2**20
    else:
        assert received > PIECES * len(PIECE) and (b"[DONE]" in tail or b"message_stop" in tail)  # all the text
    print(f"{path}: +{grown:.1f} MB")
    # a Responses stream's last events carry the output it holds (1 MB here) four times, as a completed one's
    # do: its open item's three `.done` events and `response.failed` (~16 MB at their peak, encoded and joined)
    bound = 24 if path == "responses" else 12
    assert grown < bound, f"{path}: resident memory grew {grown:.0f} MB over a {received / 2**20:.0f} MB stream"
    json.dumps(body)  # the request stays as sent
