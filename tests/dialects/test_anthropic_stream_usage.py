"""A chat stream to an Anthropic provider is counted whether or not its client asked for usage; the usage chunk
reaches only a client that asked."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest

from tests.dialects.test_anthropic_upstream import start
from tests.fakes.anthropic_upstream import AStep, stream_events


@pytest.mark.parametrize("asked", [False, True], ids=["not-asked", "asked"])
async def test_an_anthropic_chat_stream_is_counted(fake_anthropic, router, asked):
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(events=stream_events([{"type": "text", "text": "Hello world"}], "claude-sonnet-4-5",
                                         input_tokens=9, output_tokens=2)))
    body = {"model": "sonnet", "stream": True, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}],
            **({"stream_options": {"include_usage": True}} if asked else {})}
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/chat/completions", json=body) as resp:
            raw = (await resp.read()).decode()
        async with s.get(r.url + "/metrics") as resp:
            metrics = await resp.text()
    docs = [json.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: {")]
    assert [d["usage"]["completion_tokens"] for d in docs if d.get("usage")] == ([2] if asked else [])
    assert re.search(r'agentgate_tokens_total\{model="sonnet",type="completion"\} 2\.0', metrics)
