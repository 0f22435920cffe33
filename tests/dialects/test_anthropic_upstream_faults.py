"""Providers answering badly, and client input the Anthropic translation has to carry: each is an upstream failure
(502/429/504, retried and fallen back from) or a clear answer, never a 500 from the router."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.anthropic_upstream import API_KEY, AStep, error_doc, message, stream_events
from tests.fakes.openai_upstream import Step, completion
from tests.fallback_pair import with_fallback

ANTHROPIC = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
  backup: {{type: openai, base_url: '{burl}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5, fallbacks: [spare]}}
  - {{name: alone, provider: claude, model: claude-sonnet-4-5}}
  - {{name: spare, provider: backup}}
"""
OPENAI = """
providers:
  main: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: main}}
"""
ASK = {"messages": [{"role": "user", "content": "hi"}]}
DEEP = b"[" * 5000 + b"]" * 5000  # nesting no recursive parser reads
TOOL = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}


async def post(r: Any, body: dict[str, Any], path: str = "/v1/chat/completions",
               headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body, headers=headers or {}) as resp:
        return resp.status, await resp.text()


def stream_args(text: str) -> str:
    """The call arguments a chat completion stream carried, joined."""
    return "".join(call.get("function", {}).get("arguments") or ""
                   for line in text.splitlines() if line.startswith("data: {")
                   for choice in json.loads(line[6:]).get("choices") or []
                   for call in (choice.get("delta") or {}).get("tool_calls") or [])


@pytest.fixture
async def raw_anthropic() -> AsyncIterator[Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]],
                                                    Awaitable[str]]]:
    """An Anthropic API answering with whatever bytes a test's handler writes."""
    runners: list[web.AppRunner] = []

    async def make(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield make
    for runner in runners:
        await runner.cleanup()


async def test_a_stream_answered_whole_is_a_protocol_failure_that_falls_back(fake_anthropic, fakes, router) -> None:
    fake, backup = await fake_anthropic(), await fakes("backup")
    fake.push(AStep(status=200, json=message([{"type": "text", "text": "whole"}], "claude-sonnet-4-5")))
    r = await router(ANTHROPIC.format(url=fake.url, key=API_KEY, burl=backup.url))
    status, text = await post(r, {"model": "sonnet", "stream": True, **ASK})
    assert status == 200 and len(backup.requests) == 1 and "message_stop" not in text


async def test_a_200_carrying_an_error_object_is_a_failure_that_falls_back(fake_anthropic, fakes, router) -> None:
    fake, backup = await fake_anthropic(), await fakes("backup")
    r = await router(ANTHROPIC.format(url=fake.url, key=API_KEY, burl=backup.url))
    fake.push(AStep(status=200, json=error_doc("overloaded_error", "Overloaded")))
    status, _ = await post(r, {"model": "sonnet", **ASK})
    assert status == 200 and len(backup.requests) == 1
    fake.push(AStep(status=200, json=error_doc("overloaded_error", "Overloaded")))
    status, text = await post(r, {"model": "alone", **ASK})
    assert status == 502 and "Overloaded" in text and json.loads(text)["error"]["code"] == "upstream_error"



FAILED_200 = {  # a 200 answer that is a failure, what the 502 names, and a 200 like it that is an answer
    # an error object: passed through byte for byte (no tools) it reached the client as a 200 answer; repaired
    # (tools) it was a 502 without trying the fallback
    "an error object": ({"error": {"message": "Overloaded, try later", "type": "server_error"}},
                        "Overloaded, try later",
                        {"error": None, "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                                     "finish_reason": "stop"}]}),  # "error": null is no error
    # OpenRouter's when generation failed part-way (it reached the client as an answer, half a message)
    "a completion finished in error": (
        {"id": "gen-1", "object": "chat.completion", "created": 1, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "The answer is"},
                      "finish_reason": "error"}],
         "error": {"code": 502, "message": "Provider disconnected"}},
        "Provider disconnected",
        completion('Set "finish_reason": "error" in the fixture.', "m")),  # in a string: escaped, no finish
}


@pytest.mark.parametrize("case", list(FAILED_200))
async def test_a_200_that_is_a_failure_falls_back_on_every_path(fakes, router, case: str) -> None:
    """Like a 5xx: fallen back from, with and without tools, and without a fallback a 502 naming the error."""
    failed, message, answer = FAILED_200[case]
    main, backup, r = await with_fallback(fakes, router)
    for extra in ({}, {"tools": [TOOL]}):
        main.push(Step(json=failed))
        status, _ = await post(r, {"model": "fb", **ASK, **extra})
        assert status == 200 and len(backup.requests) == 1
        backup.requests.clear()
        main.push(Step(json=failed))
        status, text = await post(r, {"model": "m", **ASK, **extra})
        assert status == 502 and message in text, text[:300]
    main.push(Step(json=answer))
    status, text = await post(r, {"model": "m", **ASK})
    assert status == 200 and json.loads(text)["choices"] == answer["choices"]


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (429, 429), (400, 400)])
async def test_deeply_nested_error_bodies_are_upstream_errors(fakes, router, status: int, expected: int) -> None:
    main = await fakes("main")
    r = await router(OPENAI.format(url=main.url))
    for path, extra in (("/v1/chat/completions", {}), ("/v1/messages", {"max_tokens": 5})):
        main.push(Step(status=status, raw=DEEP))
        got, text = await post(r, {"model": "m", **ASK, **extra}, path)
        assert got == expected and "internal_error" not in text, (path, got, text[:200])


@pytest.mark.parametrize("status", [200, 400])
async def test_deeply_nested_anthropic_bodies_are_upstream_errors(raw_anthropic, fakes, router, status: int) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=status, body=DEEP, content_type="application/json")

    r = await router(ANTHROPIC.format(url=await raw_anthropic(handler), key=API_KEY, burl="http://127.0.0.1:9"))
    got, text = await post(r, {"model": "alone", **ASK})
    assert got in (400, 502) and "internal_error" not in text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("depth", [985, 3000])
async def test_an_answer_nested_too_deep_is_the_upstreams_error(raw_anthropic, router, stream: bool,
                                                                  depth: int) -> None:
    """A tool call's input nested past what the router translates (past the JSON reader, or only past the
    encoder of the translation) is a 502 from the upstream; it was a 400 telling the client its request nested too
    deep."""
    nested = '{"city": ' + "[" * depth + "]" * depth + "}"
    block = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": "@@"}

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        if not stream:
            body = json.dumps(message([block], "claude-sonnet-4-5", stop_reason="tool_use"))
            return web.Response(body=body.replace('"@@"', nested), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for name, data in stream_events([{**block, "input": {}}], "claude-sonnet-4-5", stop_reason="tool_use"):
            if name == "content_block_start":
                data = {**data, "content_block": block}
            await resp.write(f"event: {name}\ndata: {json.dumps(data).replace(chr(34) + '@@' + chr(34), nested)}"
                             f"\n\n".encode())
        return resp

    r = await router(ANTHROPIC.format(url=await raw_anthropic(handler), key=API_KEY, burl="http://127.0.0.1:9"))
    status, text = await post(r, {"model": "alone", "stream": stream, **ASK})
    if status == 200 and '"error"' not in text:
        # (a Python whose JSON reader and encoder take this depth, 3.12 on: the answer translated whole)
        assert '"finish_reason":"tool_calls"' in text and text.rstrip().endswith(("}", "data: [DONE]")), text[-300:]
        assert "nests JSON" not in text  # (streamed, the input pieces carry the call's input: `{}` here)
        assert stream or text.count("[") >= depth
    elif status == 200:  # a stream that began: its terminal error event
        assert '"error"' in text.splitlines()[-3:][0] + text[-400:] and "nests JSON" not in text
    else:
        assert status == 502 and "nests JSON" not in text, text[:300]


async def test_a_first_event_past_the_bound_is_an_upstream_error(raw_anthropic, router) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: message_start\ndata: ")
        for _ in range(17):
            await resp.write(b"x" * (1024 * 1024))
        await resp.write(b"\n\n")
        return resp

    r = await router(ANTHROPIC.format(url=await raw_anthropic(handler), key=API_KEY, burl="http://127.0.0.1:9"))
    status, text = await post(r, {"model": "alone", "stream": True, **ASK})
    assert status == 502 and json.loads(text)["error"]["code"] == "upstream_body_too_large"


async def test_the_event_bound_configured_holds_for_anthropic_streams(raw_anthropic, router) -> None:
    """`max_upstream_event_mb` bounds an Anthropic stream's events as it does an OpenAI one's: raised above the
    default 16, a 17 MB text event goes through (the Anthropic splitter kept the default bound, and it was a 502)."""
    big = "y" * (17 * 1024 * 1024)

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events = stream_events([{"type": "text", "text": "ok"}], "claude-sonnet-4-5")
        events.insert(3, ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": big}}))
        for name, data in events:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        return resp

    r = await router(ANTHROPIC.format(url=await raw_anthropic(handler), key=API_KEY, burl="http://127.0.0.1:9")
                     + "server: {max_upstream_event_mb: 24}\n")
    status, text = await post(r, {"model": "alone", "stream": True, **ASK})
    assert status == 200
    content = "".join((choice.get("delta") or {}).get("content") or ""
                      for line in text.splitlines() if line.startswith("data: {")
                      for choice in json.loads(line[6:]).get("choices") or [])
    assert len(content) == len(big) + 2 and '"error"' not in text[-2000:]


@pytest.mark.parametrize("index", ["zero", None, 1.5])
async def test_a_block_index_that_is_not_a_number_is_read_as_the_first(fake_anthropic, router, index: object) -> None:
    fake = await fake_anthropic()
    events = stream_events([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
                           "claude-sonnet-4-5", stop_reason="tool_use")
    fake.push(AStep(events=[(n, {**d, "index": index} if "index" in d else d) for n, d in events]))
    r = await router(ANTHROPIC.format(url=fake.url, key=API_KEY, burl="http://127.0.0.1:9"))
    status, text = await post(r, {"model": "alone", "stream": True, **ASK})
    assert status == 200 and json.loads(stream_args(text)) == {"a": 1}
    assert "internal_error" not in text and "[DONE]" in text


async def test_client_input_too_deep_for_a_recursive_parser_is_carried(fake_anthropic, router) -> None:
    """A history call whose arguments are 5,000 brackets deep, and a body 1,000 levels deep (which the router's
    parser reads): the request reaches Anthropic, no 500."""
    fake = await fake_anthropic()
    r = await router(ANTHROPIC.format(url=fake.url, key=API_KEY, burl="http://127.0.0.1:9"))
    history = {"model": "alone", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "[" * 5000}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]}
    for body in (history, {**history, "tools": [TOOL]}):
        fake.push(AStep(json=message([{"type": "text", "text": "ok"}], "claude-sonnet-4-5")))
        status, text = await post(r, body)
        assert status == 200, text[:300]
    raw = ('{"model": "alone", "messages": [{"role": "user", "content": "hi"}], "metadata_x": '
           + "[" * 1000 + "]" * 1000 + "}").encode()
    fake.push(AStep(json=message([{"type": "text", "text": "ok"}], "claude-sonnet-4-5")))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", data=raw,
                                                    headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200, await resp.text()


async def test_a_streamed_call_without_input_has_empty_object_arguments(fake_anthropic, router) -> None:
    """Anthropic streams a call without input as one empty piece: the client gets `{}` (as the whole answer has
    it), repaired or not."""
    fake = await fake_anthropic()
    r = await router(ANTHROPIC.format(url=fake.url, key=API_KEY, burl="http://127.0.0.1:9"))
    blocks = [{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}]
    events = [e for e in stream_events(blocks, "claude-sonnet-4-5", stop_reason="tool_use")
              if not (e[0] == "content_block_delta" and e[1]["delta"].get("partial_json"))]
    for headers in ({}, {"x-agentgate-repair": "off"}):
        fake.push(AStep(events=events))
        status, text = await post(r, {"model": "alone", "stream": True, "tools": [TOOL], **ASK}, headers=headers)
        assert status == 200 and stream_args(text) == "{}", (headers, text[:500])
