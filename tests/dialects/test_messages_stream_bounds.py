"""What a Messages stream holds while it is in flight is bounded: whitespace held back before any text (no text
block opens for it) counts toward `max_stream_repair_kchars`, and a stream past it ends with the route's terminal
`error` event, as a Responses stream does."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.dialects.conftest import CFG
from tests.fakes.openai_upstream import Step, chunk


async def _events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/messages", json=body) as resp:
        assert resp.status == 200
        text = (await resp.read()).decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


BODY = {"model": "m", "max_tokens": 1000, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def test_whitespace_held_back_counts_toward_the_bound(fakes, router):
    """2 MB of blanks at a 1k bound: they were all held (and the stream completed), now the stream ends with an
    error event past the bound, the thinking before them sent."""
    up = await fakes()
    blanks = [chunk("m", {"content": " " * 1000}) for _ in range(2000)]
    up.push(Step(sse=[chunk("m", {"reasoning_content": "thinking"}), *blanks, chunk("m", {"content": "done"}),
                      chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    events = await _events(r.url, BODY)
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error" and "whitespace" in events[-1]["error"]["message"]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[0] == {"type": "thinking_delta", "thinking": "thinking"}
    assert not any(d.get("type") == "text_delta" for d in deltas)


async def test_whitespace_within_the_bound_goes_out_with_the_text_after_it(fakes, router):
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"content": "  "}), chunk("m", {"content": "\n"}), chunk("m", {"content": "x"}),
                      chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    events = await _events(r.url, BODY)
    assert events[-1]["type"] == "message_stop"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == "  \nx"
