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


def _logprob(token: str, tops: int) -> dict[str, Any]:
    return {"token": token, "logprob": -0.25, "bytes": list(token.encode()),
            "top_logprobs": [{"token": f"{token}{i}", "logprob": -1.5 - i, "bytes": list(f"{token}{i}".encode())}
                             for i in range(tops)]}


# each one token with its 20 alternatives: ~1.3 KB of logprobs (~8 MB in all, 30 times the final object's bound),
# the text 5 characters
LOGPROB_CHUNKS = 6_000


def with_logprobs(text: bool) -> Iterator[Any]:
    """A stream whose every chunk carries one token's logprobs with 20 alternatives, its text with it (`text`), or
    none at all until the last chunk (logprobs alone, as for tokens of no text)."""
    yield chunk("m", {"role": "assistant", "content": ""})
    entry = _logprob("word ", 20)
    for _ in range(LOGPROB_CHUNKS):
        piece = chunk("m", {"content": "word " if text else ""})
        piece["choices"][0]["logprobs"] = {"content": [entry]}
        yield piece
    if not text:
        yield chunk("m", {"content": "end"})
    yield chunk("m", {}, "stop")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc")
@pytest.mark.parametrize("text", [True, False], ids=["with-text", "alone"])
async def test_a_responses_stream_keeps_its_logprobs_bounded(fakes, router, text):
    """`include: ["message.output_text.logprobs"]` with `top_logprobs: 20`: the final Response keeps the text's
    logprobs up to their own bound (4x the output bound, in their JSON), the delta events carry them all. The
    Response held every token's logprobs (~8 MB here, ~75 MB once parsed), and logprobs of no text were not
    counted against any bound: the stream completes, and the router grows by a few MB."""
    up = await fakes()
    up.push(Step(sse=with_logprobs(text)))  # type: ignore[arg-type]
    r = await router("server: {max_stream_repair_kchars: 64}\n" + CFG.format(url=up.url))
    body = {"model": "m", "stream": True, "input": "go", "store": False, "top_logprobs": 20,
            "include": ["message.output_text.logprobs"]}
    base, peak, buffer, carried, final = _rss(), 0, b"", 0, None
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 200
        async for data in resp.content.iter_any():
            events = (buffer + data).split(b"\n\n")
            buffer = events.pop()
            for event in events:
                if b"\ndata: " not in event:  # a `: keepalive` comment, when a loaded machine is slow to parse
                    continue
                doc = json.loads(event.split(b"\ndata: ", 1)[1])
                if doc["type"] == "response.output_text.delta":
                    carried += len(doc["logprobs"])
                elif doc["type"] in ("response.completed", "response.failed", "response.incomplete"):
                    final = doc["response"]
            peak = max(peak, _rss())
    grown = (peak - base) / 2**20
    print(f"logprobs {'with text' if text else 'alone'}: +{grown:.1f} MB")
    assert final is not None and final["status"] == "completed"
    [part] = final["output"][0]["content"]
    assert part["text"] == ("word " * LOGPROB_CHUNKS if text else "end")
    kept = part["logprobs"]
    assert len(json.dumps(kept, separators=(",", ":"))) <= 4 * 64 * 1024
    if text:  # every delta carries its token's; the final object the first of them
        assert carried == LOGPROB_CHUNKS and 0 < len(kept) < LOGPROB_CHUNKS
        assert all(e["token"] == "word " and len(e["top_logprobs"]) == 20 for e in kept)
    assert grown < 24, f"resident memory grew {grown:.0f} MB"
