"""Streaming: true passthrough, byte-faithful, disconnects propagate, mid-stream failures end cleanly."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.fakes.openai_upstream import Step, chunk, completion, stream_of
from tests.waiting import wait_until

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 2, backoff: {{base: 0.001, max: 0.002}}}}
models:
  - {{name: same, provider: lab}}
  - {{name: renamed, provider: lab, model: up-model}}
"""


async def test_stream_is_byte_faithful_when_names_match(fakes, router):
    up = await fakes()
    events = [b'data: {"id":"x","object":"chat.completion.chunk","model":"same","choices":[{"index":0,'
              b'"delta":{"content":"h\\u00e9llo"},"finish_reason":null}]}\n\n',
              b": keep-alive comment\n\n",
              b'data: {"id":"x","object":"chat.completion.chunk","model":"same","choices":[{"index":0,'
              b'"delta":{},"finish_reason":"stop"}]}\n\n']
    up.push(Step(sse=events))
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions",
                                                    json={"model": "same", "stream": True, "messages": []}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        assert await resp.read() == b"".join(events) + b"data: [DONE]\n\n"


async def test_nonstream_is_byte_faithful_when_names_match(fakes, router):
    up = await fakes()
    raw = b'{"id": "c", "object": "chat.completion", "model": "same",  "choices": [], "x_vendor": 1}'
    up.push(Step(raw=raw))
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions",
                                                    json={"model": "same", "messages": []}) as resp:
        assert await resp.read() == raw


async def test_stream_renames_model_through_openai_client(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b", "c"], "up-model")))
    r = await router(CFG.format(url=up.url))
    stream = await r.client().chat.completions.create(model="renamed", stream=True,
                                                      messages=[{"role": "user", "content": "x"}])
    text, models = "", set()
    async for c in stream:
        models.add(c.model)
        if c.choices and c.choices[0].delta.content:
            text += c.choices[0].delta.content
    assert text == "abc" and models == {"renamed"}
    assert up.requests[0].body["model"] == "up-model"


async def test_chunks_are_forwarded_as_they_arrive(fakes, router):
    """The client sees the first chunk while the upstream is still holding the rest."""
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["first", "second"], "same"), pause_after=2, resume=resume))
    r = await router(CFG.format(url=up.url))
    stream = await r.client().chat.completions.create(model="same", stream=True,
                                                      messages=[{"role": "user", "content": "x"}])
    it = stream.__aiter__()
    seen = []
    while "first" not in seen:
        c = await asyncio.wait_for(it.__anext__(), 10)
        seen.append(c.choices[0].delta.content)
    assert not resume.is_set()  # got "first" before the upstream was allowed to continue
    resume.set()
    rest = [c.choices[0].delta.content async for c in it if c.choices]
    assert "second" in rest


async def test_client_disconnect_closes_upstream(fakes, router):
    up = await fakes()
    resume = asyncio.Event()  # never set: the upstream would hold forever
    up.push(Step(sse=stream_of(["a", "b"], "same"), pause_after=2, resume=resume))
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s:
        resp = await s.post(r.url + "/v1/chat/completions", json={"model": "same", "stream": True, "messages": []})
        await resp.content.readuntil(b"\n\n")
        resp.close()  # the client goes away mid-stream
    await asyncio.wait_for(up.cancelled_event.wait(), 10)
    assert up.cancelled == 1
    up_state = r.state.runtime.upstreams["lab"]
    await wait_until(lambda: up_state.outstanding == 0)


async def test_upstream_dying_mid_stream_sends_terminal_error_event(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["partial", "more", "never"], "same"), reset_after=2))
    r = await router(CFG.format(url=up.url))
    stream = await r.client().chat.completions.create(model="same", stream=True,
                                                      messages=[{"role": "user", "content": "x"}])
    got = []
    with pytest.raises(openai.APIError) as info:
        async for c in stream:
            got.append(c.choices[0].delta.content)
    assert "partial" in got and "mid-stream" in str(info.value)
    assert len(up.requests) == 1  # no retry once bytes reached the client


async def test_retry_before_first_byte_only(fakes, router):
    up = await fakes()
    up.push(Step(status=502), Step(status=500), Step(json=completion("ok", "same")))
    r = await router(CFG.format(url=up.url))
    resp = await r.client().chat.completions.create(model="same", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "ok" and len(up.requests) == 3


async def test_stream_retried_when_upstream_dies_before_first_chunk(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["never"], "same"), reset_after=0), Step(sse=stream_of(["ok"], "same")))
    r = await router(CFG.format(url=up.url))
    stream = await r.client().chat.completions.create(model="same", stream=True,
                                                      messages=[{"role": "user", "content": "x"}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "ok" and len(up.requests) == 2


@pytest.mark.parametrize(("status", "mine", "code"), [(500, 502, "upstream_error"), (503, 503, "upstream_overloaded"),
                                                      (529, 503, "upstream_overloaded")])
async def test_retries_exhausted_gives_openai_error(fakes, router, status, mine, code):
    """An upstream that says it is busy (503; Anthropic's 529) is a 503 the client may retry later, with the
    upstream's Retry-After; any other 5xx is a 502."""
    up = await fakes()
    up.push(*[Step(status=status, headers={"Retry-After": "0"})] * 3)
    r = await router(CFG.format(url=up.url))
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="same", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == mine and info.value.body["code"] == code
    assert info.value.response.headers.get("retry-after") == ("0" if mine == 503 else None)
    assert len(up.requests) == 3


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-inf"])
async def test_a_retry_after_no_one_can_wait_is_ignored(fakes, router, value):
    """An upstream's `Retry-After: inf` made every reply of it a 500 (the header's parse overflowed): no retry, no
    fallback. It is a 503 like any other, retried, and its Retry-After is dropped."""
    up = await fakes()
    up.push(*[Step(status=503, headers={"Retry-After": value})] * 2, Step(json=completion("ok", "same")))
    r = await router(CFG.format(url=up.url))
    resp = await r.client().chat.completions.create(model="same", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == "ok" and len(up.requests) == 3


async def test_retry_after_is_honoured(fakes, router):
    up = await fakes()
    up.push(Step(status=429, headers={"Retry-After": "0.3"}), Step(json=completion("ok", "same")))
    r = await router(CFG.format(url=up.url))
    await r.client().chat.completions.create(model="same", messages=[{"role": "user", "content": "x"}])
    gap = up.requests[1].at - up.requests[0].at
    assert gap >= 0.3  # waited at least what the upstream asked (backoff alone would be ~1 ms)


async def test_usage_and_mid_stream_json(fakes, router):
    up = await fakes()
    events = [*stream_of(["x"], "same"), {**chunk("same", {}), "choices": [], "usage": {
        "prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}]
    up.push(Step(sse=events))
    r = await router(CFG.format(url=up.url))
    stream = await r.client().chat.completions.create(model="same", stream=True, stream_options={
        "include_usage": True}, messages=[{"role": "user", "content": "x"}])
    usage = [c.usage async for c in stream if c.usage]
    assert usage[0].prompt_tokens == 7
    assert json.loads(json.dumps(usage[0].model_dump()))["total_tokens"] == 9


@pytest.mark.parametrize("tools", [False, True], ids=["passed through", "repaired"])
@pytest.mark.parametrize("error", [{"code": 502, "message": "Provider returned error"}, None],
                         ids=["an error member", "finish_reason alone"])
async def test_a_chunk_that_finishes_with_an_error_ends_the_stream_with_one(fakes, router, tools, error):
    """OpenRouter ends a stream that failed mid-way with a chunk whose finish_reason is "error" and which carries
    an `error` member: the client gets the terminal error event, not a stream that finished (it got
    `finish_reason: "error"` and, from a repaired stream, no message at all)."""
    events = stream_of(["partial", " more"], "same")[:-1]
    failed = chunk("same", {"content": ""}, "error")
    if error is not None:
        failed["error"] = error
    up = await fakes()
    up.push(Step(sse=[*events, failed]))
    r = await router(CFG.format(url=up.url))
    kw: dict = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]} \
        if tools else {}
    stream = await r.client().chat.completions.create(model="same", stream=True,
                                                      messages=[{"role": "user", "content": "x"}], **kw)
    got = []
    with pytest.raises(openai.APIError) as info:
        async for c in stream:
            got.append(c.choices[0].delta.content if c.choices else None)
    assert "partial" in "".join(g or "" for g in got) and "mid-stream" in str(info.value)
    assert (error is None) or "Provider returned error" in str(info.value)
