"""An upstream that says it is overloaded (HTTP 529, Anthropic's own status for it, or 503) reaches a Messages
client as Anthropic's `overloaded_error`, which Claude Code and the anthropic SDK retry as overload (the SDK's
`OverloadedError` for 529), not as an unknown `api_error`."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeUpstream, Step

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


@pytest.mark.parametrize("status", [529, 503])
async def test_an_overloaded_upstream_is_an_overloaded_error(fakes, router, status) -> None:
    up: FakeUpstream = await fakes()
    up.push(Step(status=status, json={"error": {"message": "Overloaded", "type": "overloaded_error"}}))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json=body,
                                                    headers={"anthropic-version": "2023-06-01"}) as resp:
        doc = json.loads(await resp.read())
        got = resp.status
    assert doc["type"] == "error" and doc["error"]["type"] == "overloaded_error", (got, doc)


def chunk(content: str) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": None}]}


@pytest.mark.parametrize(("error", "expected"), [
    ({"message": "Overloaded", "type": "overloaded_error", "code": 529}, "overloaded_error"),
    ({"message": "Rate limit reached", "type": "rate_limit_error", "code": 429}, "rate_limit_error"),
    ({"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}, "rate_limit_error"),
])
async def test_an_overload_mid_stream_is_named_in_the_error_event(fakes, router, error, expected) -> None:
    up: FakeUpstream = await fakes()
    up.push(Step(sse=[chunk("Hel"), {"error": error}], done=False))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json=body,
                                                    headers={"anthropic-version": "2023-06-01"}) as resp:
        raw = (await resp.read()).decode()
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error", raw
    assert events[-1]["error"]["type"] == expected, raw


OVERFLOW = {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 "
                       "tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}


async def test_a_context_overflow_after_the_role_chunk_is_the_overflow_each_client_recognises(fakes, router) -> None:
    """An upstream that opened its stream (a role chunk) before it found the prompt too long: Claude Code compacts
    on Anthropic's 400 "prompt is too long: N tokens > L maximum", Codex on a failed response whose code is
    context_length_exceeded, the openai SDK reads the chat stream's error code."""
    up: FakeUpstream = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s:
        up.push(Step(sse=[chunk(""), {"error": OVERFLOW}], done=False))
        body = {"model": "m", "max_tokens": 16, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with s.post(r.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}) as resp:
            raw = (await resp.read()).decode()
        last = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")][-1]
        assert last["type"] == "error" and last["error"]["type"] == "invalid_request_error", raw
        assert "prompt is too long: 9000 tokens > 8192 maximum" in last["error"]["message"], raw

        up.push(Step(sse=[chunk(""), {"error": OVERFLOW}], done=False))
        async with s.post(r.url + "/v1/responses", json={"model": "m", "input": "hi", "stream": True}) as resp:
            raw = (await resp.read()).decode()
        last = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")][-1]
        assert last["type"] == "response.failed", raw
        assert last["response"]["error"]["code"] == "context_length_exceeded", raw

        up.push(Step(sse=[chunk(""), {"error": OVERFLOW}], done=False))
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with s.post(r.url + "/v1/chat/completions", json=body) as resp:
            raw = (await resp.read()).decode()
        last = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")][-1]
        assert last["error"]["code"] == "context_length_exceeded", raw
