"""A chat stream's tokens are counted whether or not its client asked for usage: the route asks the upstream for
it always (`stream_options.include_usage`), counts it, and passes the usage-only chunk on only to a client that
asked. They were counted nowhere (tokens metric, access log, the console's per-key usage) without it."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest

from router import relay
from router.api import openai_routes
from router.upstream.base import Unknown, UpstreamRequest
from tests.fakes.openai_upstream import Step, chunk, stream_of

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}'{key}}}
models:
  - {{name: same, provider: lab}}
"""
USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
SECRET = "sk-test-usage-secret-0123456789"


def openai_like(null_usage: bool = False):
    """What OpenAI streams: the usage chunk last when asked (and, with `null_usage`, `"usage": null` in every
    chunk before it), none when not."""
    def answer(body: dict[str, Any]) -> Step:
        events = stream_of(["hello", " there"], "same")
        if (body.get("stream_options") or {}).get("include_usage"):
            if null_usage:
                events = [{**e, "usage": None} for e in events]
            events.append({**chunk("same", {}), "choices": [], "usage": USAGE})
        return Step(sse=events)
    return answer


async def _stream(url: str, body: dict[str, Any]) -> tuple[int, list[Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        raw = await resp.read()
    docs = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: {")]
    assert raw.endswith(b"data: [DONE]\n\n")
    return resp.status, docs


async def _completion_tokens(url: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
        text = await resp.text()
    m = re.search(r'agentgate_tokens_total\{model="same",type="completion"\} ([0-9.]+)', text)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("null_usage", [False, True], ids=["usage-last", "usage-null-before"])
@pytest.mark.parametrize("key", ["", SECRET], ids=["no-key", "key"])
@pytest.mark.parametrize("tools", [False, True], ids=["passed-through", "repaired"])
@pytest.mark.parametrize("asked", [False, True], ids=["not-asked", "asked"])
async def test_a_chat_streams_usage_is_counted_and_sent_only_when_asked(fakes, router, asked, tools, key,
                                                                         null_usage):
    up = await fakes()
    up.push(openai_like(null_usage))
    r = await router(CFG.format(url=up.url, key=f", api_key: {SECRET}" if key else ""))
    body: dict[str, Any] = {"model": "same", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    if asked:
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = TOOLS
    status, docs = await _stream(r.url, body)
    assert status == 200
    assert up.requests[0].body["stream_options"] == {"include_usage": True}
    assert "".join(c["delta"].get("content") or "" for d in docs for c in d["choices"]) == "hello there"
    usage_chunks = [d for d in docs if d.get("choices") == [] and d.get("usage")]
    assert [d["usage"] for d in usage_chunks] == ([USAGE] if asked else [])
    assert await _completion_tokens(r.url) == 2.0


async def test_the_clients_bytes_go_with_the_option_in_front(fakes, router):
    """A body without `stream_options` is sent as the client's bytes with the member put in front; the client's
    other stream options are kept."""
    up = await fakes()
    up.push(openai_like(), openai_like())
    r = await router(CFG.format(url=up.url, key=""))
    await _stream(r.url, {"model": "same", "stream": True, "messages": []})
    await _stream(r.url, {"model": "same", "stream": True, "messages": [],
                          "stream_options": {"include_usage": False, "x_other": 1}})
    assert up.requests[1].body["stream_options"] == {"include_usage": True, "x_other": 1}
    assert await _completion_tokens(r.url) == 4.0


@pytest.mark.parametrize("tools", [False, True], ids=["passed-through", "repaired"])
async def test_an_upstream_that_refuses_stream_options_is_asked_again_without(fakes, router, tools):
    """An older server or API version answers 400 to a parameter it does not know: the request goes again as the
    client sent it, and the stream is answered (uncounted, as before)."""
    def refusing(body: dict[str, Any]) -> Step:
        if "stream_options" in body:
            return Step(status=400, json={"error": {"message": "Unrecognized request argument supplied: "
                                                               "stream_options", "type": "invalid_request_error"}})
        return openai_like()(body)

    up = await fakes()
    up.push(refusing, refusing)
    r = await router(CFG.format(url=up.url, key=""))
    body: dict[str, Any] = {"model": "same", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    if tools:
        body["tools"] = TOOLS
    status, docs = await _stream(r.url, body)
    assert status == 200
    assert "".join(c["delta"].get("content") or "" for d in docs for c in d["choices"]) == "hello there"
    assert [("stream_options" in q.body) for q in up.requests] == [True, False]


@pytest.mark.parametrize("route", ["messages", "responses"])
async def test_an_upstream_that_refuses_stream_options_gets_the_translated_stream_again_without(fakes, router, route):
    """The Messages and Responses routes ask their streams for usage too: a server that refuses the parameter
    (Fireworks in 2024: 400 "Extra inputs are not permitted, field: 'stream_options'"; pydantic servers that forbid
    extra fields) gets the stream again without it, as on the chat route; it was the client's 400."""
    def refusing(body: dict[str, Any]) -> Step:
        if "stream_options" in body:
            return Step(status=400, json={"error": {"message": "Extra inputs are not permitted, field: "
                                                               "'stream_options'", "type": "invalid_request_error"}})
        return openai_like()(body)

    up = await fakes()
    up.push(refusing, refusing)
    r = await router(CFG.format(url=up.url, key=""))
    user = [{"role": "user", "content": "x"}]
    path, body = ("/v1/messages", {"model": "same", "stream": True, "max_tokens": 20, "messages": user}) \
        if route == "messages" else ("/v1/responses", {"model": "same", "stream": True, "input": "x", "store": False})
    async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body) as resp:
        status, text = resp.status, await resp.text()
    assert status == 200 and "hello" in text and " there" in text, text
    assert [("stream_options" in q.body) for q in up.requests] == [True, False]


CFG_TWO = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
  other: {{type: openai, base_url: '{other}', retries: 0}}
models:
  - {{name: same, provider: lab, fallbacks: [alt]}}
  - {{name: second, provider: lab}}
  - {{name: alt, provider: other}}
"""


def _refusing(body: dict[str, Any]) -> Step:
    """A server that knows no `stream_options` (422, as pydantic servers that forbid extra fields answer)."""
    if "stream_options" in body:
        return Step(status=422, json={"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"],
                                                  "msg": "Extra inputs are not permitted"}]})
    return openai_like()(body)


def _asked(requests: list[Any]) -> list[bool]:
    return [(q.body.get("stream_options") or {}).get("include_usage") is True for q in requests]


@pytest.mark.parametrize("tools", [False, True], ids=["passed-through", "repaired"])
async def test_an_upstream_that_refused_stream_options_is_not_sent_them_again(fakes, router, tools):
    """An upstream that refused `stream_options` gets the next streams (for that model) as the client sent them
    at once: before, each request of an agent loop made the refused round trip first. Another upstream (a fallback,
    another model's) and another model of the same upstream still get them; a client that asked for usage itself
    still sends its own."""
    up, other = await fakes(), await fakes("other")
    up.push(*[_refusing] * 4, Step(status=500, json={"error": {"message": "down"}}), _refusing, _refusing, _refusing)
    other.push(openai_like(), openai_like())
    r = await router(CFG_TWO.format(url=up.url, other=other.url))

    def body(model: str, **more: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}], **more}
        return {**out, "tools": TOOLS} if tools else out

    for _ in range(3):
        status, docs = await _stream(r.url, body("same"))
        assert status == 200
        assert "".join(c["delta"].get("content") or "" for d in docs for c in d["choices"]) == "hello there"
        assert not [d for d in docs if d.get("choices") == []]  # (the client asked for no usage chunk)
    assert _asked(up.requests) == [True, False, False, False]
    assert [q.body for q in up.requests[1:]] == [body("same")] * 3  # as the client sent it
    status, _ = await _stream(r.url, body("same"))  # the upstream fails: the fallback, elsewhere, is asked for usage
    assert status == 200 and _asked(up.requests[4:]) == [False] and _asked(other.requests) == [True]
    status, docs = await _stream(r.url, body("alt"))
    assert status == 200 and _asked(other.requests) == [True, True]
    status, _ = await _stream(r.url, body("second"))
    assert status == 200 and _asked(up.requests[5:]) == [True, False]
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions",
                                                    json=body("same", stream_options={"include_usage": True})) as resp:
        assert resp.status == 422  # the client's own `stream_options`, refused as before
    assert _asked(up.requests[7:]) == [True]


@pytest.mark.parametrize("route", ["messages", "responses"])
async def test_an_upstream_that_refused_stream_options_is_not_sent_them_again_by_a_translated_route(fakes, router,
                                                                                                   route):
    """The Messages and Responses routes remember the refusal the same way; another upstream still gets the
    option."""
    up, other = await fakes(), await fakes("other")
    up.push(*[_refusing] * 4)
    other.push(openai_like())
    r = await router(CFG_TWO.format(url=up.url, other=other.url))

    async def ask(model: str) -> None:
        user = [{"role": "user", "content": "x"}]
        path, body = ("/v1/messages", {"model": model, "stream": True, "max_tokens": 20, "messages": user}) \
            if route == "messages" else ("/v1/responses", {"model": model, "stream": True, "input": "x",
                                                           "store": False})
        async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body) as resp:
            status, text = resp.status, await resp.text()
        assert status == 200 and "hello" in text and " there" in text, text

    for _ in range(3):
        await ask("same")
    assert ["stream_options" in q.body for q in up.requests] == [True, False, False, False]
    await ask("alt")
    assert _asked(other.requests) == [True]


def test_a_reask_to_an_upstream_that_refused_stream_options_has_the_clients_own():
    """A repair's re-ask (a body made from the one that asked for usage) goes to such an upstream with the client's
    own `stream_options`; the first request is the client's, bytes and all."""
    client: dict[str, Any] = {"model": "m", "stream": True, "messages": [], "stream_options": {"x_other": 1}}
    raw = json.dumps(client).encode()
    sent, _ = openai_routes.with_usage(client, raw)
    refit = openai_routes.AsClientSent(client, raw, sent)
    first = UpstreamRequest("/chat/completions", sent, None, stream=True)
    assert refit(first, Unknown.REASONING) is first
    assert refit(first, Unknown.STREAM_OPTIONS) == first._replace(body=client, raw=raw)
    reask = first._replace(body={**sent, "messages": [{"role": "user", "content": "again"}]})
    assert refit(reask, Unknown.STREAM_OPTIONS).body == {**client, "messages": [{"role": "user", "content": "again"}]}


def test_null_usage_needs_no_look():
    """`"usage": null` in every chunk (OpenAI's, when asked for usage) leaves the chunks to pass unparsed."""
    blob = b"".join(b"data: " + json.dumps({**c, "usage": None}, separators=sep).encode() + b"\n\n"
                    for c in stream_of(["a", "b"], "m")[:-1] for sep in ((",", ":"), (", ", ": ")))
    assert relay._first_usage(blob, len(blob)) == len(blob)
    tail = b'data: {"choices":[],"usage":{}}\n\n'
    assert relay._first_usage(blob + tail, len(blob + tail)) == len(blob) + tail.index(b'"usage"')


@pytest.mark.parametrize("tools", [False, True], ids=["passed-through", "repaired"])
async def test_a_clients_own_refused_stream_options_are_not_the_upstreams_refusal(fakes, router, tools):
    """A client's malformed `stream_options` is its own 400: the upstream, which knows the parameter, is still asked
    for usage by the next streams. Taken for the upstream's refusal, one such request stopped the counting of every
    later stream of that model (and the usage of the Messages and Responses streams) for the upstream's life."""
    def strict(body: dict[str, Any]) -> Step:
        if not isinstance((body.get("stream_options") or {}).get("include_obfuscation", True), bool):
            return Step(status=400, json={"error": {
                "message": "Invalid type for 'stream_options.include_obfuscation': expected a boolean, but got a "
                           "string instead.", "type": "invalid_request_error",
                "param": "stream_options.include_obfuscation", "code": "invalid_type"}})
        return openai_like()(body)

    up = await fakes()
    up.push(*[strict] * 4)
    r = await router(CFG.format(url=up.url, key=""))
    body: dict[str, Any] = {"model": "same", "stream": True, "messages": [{"role": "user", "content": "x"}],
                            **({"tools": TOOLS} if tools else {})}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json={
            **body, "stream_options": {"include_obfuscation": "no"}}) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_type"
    requests = len(up.requests)
    status, _ = await _stream(r.url, body)
    assert status == 200
    assert [(q.body.get("stream_options") or {}).get("include_usage") for q in up.requests[requests:]] == [True]
    assert await _completion_tokens(r.url) == 2.0
