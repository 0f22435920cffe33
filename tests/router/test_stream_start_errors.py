"""How a stream's start fails, as OpenAI-compatible servers write it, on every route: an error event as the first
event (OpenRouter's `data: {"error": ..., "choices": [{"finish_reason": "error"}]}` after its `: OPENROUTER
PROCESSING` comment, llama-server's `error: {...}` field before ggml-org/llama.cpp#16109, `event: error`), or a
stream that is `data: [DONE]` alone, is a failure before the first chunk (retried, fallen back from, or the
client's error when its code says 4xx); the same error events after the first chunk end the stream with its
terminal error, never a normal stop."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router import dispatch, pipeline
from router.exchange import Exchange
from tests.fakes.openai_upstream import Step, chunk, stream_of

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

OPENROUTER = [b": OPENROUTER PROCESSING\n\n",
              {"id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": "x", "provider": "X",
               "error": {"code": 502, "message": "Provider returned error"},
               "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}]
LLAMA_503 = [b'error: {"code":503,"message":"Loading model","type":"unavailable_error"}\n\n']
NAMED = [b'event: error\ndata: {"message":"upstream overloaded"}\n\n']
ROUTES = ["chat", "chat+tools", "messages", "responses"]


def _request(route: str, model: str) -> tuple[str, dict[str, Any]]:
    user = [{"role": "user", "content": "x"}]
    if route.startswith("chat"):
        return "/v1/chat/completions", {"model": model, "stream": True, "messages": user,
                                        **({"tools": TOOLS} if route == "chat+tools" else {})}
    if route == "messages":
        return "/v1/messages", {"model": model, "stream": True, "max_tokens": 20, "messages": user}
    return "/v1/responses", {"model": model, "stream": True, "input": "x", "store": False}


async def _post(url: str, route: str, model: str = "m") -> tuple[int, str]:
    path, body = _request(route, model)
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as resp:
        return resp.status, await resp.text()


async def _pair(fakes, router, retries: int = 1):
    a, b = await fakes("a"), await fakes("b")
    r = await router(f"""
providers:
  a: {{type: openai, base_url: '{a.url}', retries: {retries}, backoff: {{base: 0.001, max: 0.002}},
      breaker: {{failures: 10, cooldown: 30}}}}
  b: {{type: openai, base_url: '{b.url}', retries: 0}}
models:
  - {{name: m, provider: a, fallbacks: [n]}}
  - {{name: n, provider: b}}
""")
    return a, b, r


@pytest.mark.parametrize("start", [OPENROUTER, LLAMA_503, NAMED, []],
                         ids=["openrouter-error-chunk", "llama-error-field", "event-error", "done-alone"])
@pytest.mark.parametrize("route", ROUTES)
async def test_a_stream_whose_first_event_is_an_error_or_the_end_is_retried_then_falls_back(fakes, router, route,
                                                                                            start):
    """Nothing reached the client: the error event (or `[DONE]` with no chunk before it) is a failure before the
    first chunk like a reset, on every route (the plain chat stream answered 200 and the error event, the others
    502; `[DONE]` alone was a 500 on Messages and Responses, an empty answer with tools)."""
    a, b, r = await _pair(fakes, router)
    a.push(Step(sse=start, done=start is not OPENROUTER), Step(sse=start, done=start is not OPENROUTER))
    b.push(Step(sse=stream_of(["fine"], "n")))
    status, text = await _post(r.url, route)
    assert status == 200 and "fine" in text, text
    assert "upstream_error" not in text and "response.failed" not in text and "event: error" not in text
    assert (len(a.requests), len(b.requests)) == (2, 1)
    assert r.state.runtime.upstreams["a"].breaker.consecutive == 2


@pytest.mark.parametrize("route", ROUTES)
async def test_a_first_error_event_with_a_4xx_code_is_the_clients_error(fakes, router, route):
    """llama-server's context overflow as its first event (`error: {"code": 400, ...}`): the client's error, as a
    400 status is (its message, in the route's shape), neither retried nor fallen back from."""
    a, b, r = await _pair(fakes, router)
    a.push(Step(sse=[b'error: {"code":400,"message":"the request exceeds the available context size",'
                     b'"type":"invalid_request_error"}\n\n']))
    status, text = await _post(r.url, route)
    if route == "responses":  # a stream that fails as OpenAI's does (Codex reads `response.failed`'s code)
        assert status == 200 and text.rstrip().split("\n")[-2] == "event: response.failed", text
        assert '"code":"context_length_exceeded"' in text
    else:
        assert status == 400, text
        assert "the request exceeds the available context size" in json.dumps(json.loads(text))
    if route == "messages":
        assert json.loads(text)["error"]["type"] == "invalid_request_error"
    assert (len(a.requests), len(b.requests)) == (1, 0)
    assert r.state.runtime.upstreams["a"].breaker.consecutive == 0


@pytest.mark.parametrize("route", ROUTES)
async def test_a_first_error_event_gives_no_provider_key_in_any_field(fakes, router, route):
    """The provider's key echoed in a first 4xx error event's message, code or type is redacted in each (the message
    was; its code and type went out as the upstream wrote them)."""
    key = "sk-first-event-key-0123456789"
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, api_key: '{key}'}}
models:
  - {{name: m, provider: lab}}
""")
    for event in (b'error: {"code":400,"message":"bad key ' + key.encode() + b'","type":"invalid ' + key.encode()
                  + b'"}\n\n',
                  b'data: {"error":{"status":400,"code":"invalid_api_key:' + key.encode()
                  + b'","message":"bad key"}}\n\n'):
        up.push(Step(sse=[event]))
        status, text = await _post(r.url, route)
        assert status == 400 and key not in text and key[:12] not in text, text


@pytest.mark.parametrize("error", [
    b'error: {"code":500,"message":"the model crashed","type":"server_error"}\n\n',
    b'event: error\ndata: {"message": "the model crashed"}\n\n',
], ids=["error-field", "event-error"])
@pytest.mark.parametrize("secret", [False, True], ids=["keyless", "with-key"])
@pytest.mark.parametrize("interval", [0.0, 0.05], ids=["one-read", "separate-reads"])
@pytest.mark.parametrize("route", ROUTES)
async def test_an_error_field_after_the_first_chunk_ends_the_stream_with_its_error(fakes, router, route, interval,
                                                                                   secret, error):
    """llama-server's `error: {...}` (or an `event: error`) then `data: [DONE]` after the stream began: the
    terminal error event, never a normal (empty) stop; on the pass-through too (keyless: events passed unparsed),
    whether the error and the `[DONE]` come in one read or two."""
    up = await fakes()
    key = "api_key: sk-test-0123456789abcdef, " if secret else ""
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', {key}retries: 0}}
models:
  - {{name: m, provider: lab}}
""")
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": "Hel"}), error],
                 interval=interval))
    status, text = await _post(r.url, route)
    assert status == 200
    assert "the model crashed" in text, text
    if route == "messages":
        assert "event: error" in text and "message_stop" not in text
    elif route == "responses":
        assert "response.failed" in text and "response.completed" not in text
    else:
        assert text.rstrip().endswith("}") and "[DONE]" not in text
        assert '"finish_reason": "stop"' not in text and '"finish_reason":"stop"' not in text


async def test_a_stream_that_makes_no_item_is_the_upstreams_error() -> None:
    """A stream whose generator ends before its first item (nothing the upstream sent was a chunk) is a 502, not
    an unhandled StopAsyncIteration (500)."""
    async def nothing():
        if False:
            yield []

    ex = Exchange("r", "chat")
    ex.provider = "up"
    with pytest.raises(pipeline.ApiError) as info:
        await pipeline._chat_stream(ex, nothing())
    assert info.value.status == 502 and info.value.code == "upstream_truncated"


@pytest.mark.parametrize(("data", "verdict"), [
    (b": OPENROUTER PROCESSING\n\n", "more"),
    (b'data: {"choices": [{"delta": {"content": "a"}}]}', "more"),  # the first event not whole yet
    (b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n', "chunk"),
    (b': x\r\n\r\nid: 1\r\n\r\ndata: {"choices": []}\r\n\r\n', "chunk"),
    (b'data: {"choices": [{"delta": {"content": "an \\"error\\""}}]}\n\n', "chunk"),
    (b': x\r\n\r\ndata: [DONE]\r\n\r\n', "truncated"),
    (b'data: {"error": {"message": "busy", "code": 503}}\n\n', 503),
    (b'data: {"error": {"message": "slow down", "code": "429"}}\n\n', 429),
    (b'data: {"error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n', 503),
    (b'data: {"choices": [{"delta": {}, "finish_reason": "error"}]}\n\n', 502),
    (b'error: {"code":400,"message":"too long"}\n\n', 400),
    (b"event: error\ndata: oops\n\n", 502),
    (b"x" * (dispatch.FIRST_COMMENTS_MAX + 1), "chunk"),  # past the bound: begun anyway
])
def test_the_first_event_is_looked_at_once(data: bytes, verdict: Any) -> None:
    got = dispatch._opening("up", data, ())
    if verdict == "more":
        assert got is dispatch._MORE
    elif verdict == "chunk":
        assert got is None
    else:
        assert isinstance(got, dispatch.Failure)
        assert (got.kind if verdict == "truncated" else got.error.status) == verdict
        assert got.client == (verdict == 400)

