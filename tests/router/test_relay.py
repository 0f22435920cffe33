"""The one relay: every route ends a cut-off or failed upstream stream with one error, never a normal stop; the
provider key never reaches the client however it is encoded; events and bodies are bounded; keepalives flow while
nothing is sent."""

from __future__ import annotations

import json

import aiohttp
import pytest

from router import relay
from tests.fakes.openai_upstream import Step, chunk, stream_of

SECRET = "sk-upstream-secret-123"
TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"]}}}]
ANTHROPIC_TOOLS = [{"name": "write_file", "input_schema": TOOLS[0]["function"]["parameters"]}]


def cfg(url: str, extra: str = "") -> str:
    return f"""
server: {{{extra}}}
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0, api_key: '{SECRET}'}}
models:
  - {{name: m, provider: lab}}
"""


def native_call(model: str = "m") -> list:
    """A native tool call cut into pieces (no finish_reason yet)."""
    head = chunk(model, {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                               "function": {"name": "write_file", "arguments": ""}}]})
    args = '{"path": "a.txt", "content": "' + "x" * 40 + '"}'
    pieces = [chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 8]}}]})
              for i in range(0, len(args), 8)]
    return [head, *pieces]


# --- the three dialects, read raw ----------------------------------------------------------------------------------

def chat_body(tools: bool) -> dict:
    body: dict = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if tools:
        body["tools"] = TOOLS
    return body


ROUTES = {
    "chat": ("/v1/chat/completions", chat_body(False)),
    "chat_tools": ("/v1/chat/completions", chat_body(True)),
    "messages": ("/v1/messages", {"model": "m", "max_tokens": 64, "stream": True, "tools": ANTHROPIC_TOOLS,
                                  "messages": [{"role": "user", "content": "hi"}]}),
    "responses": ("/v1/responses", {"model": "m", "stream": True, "input": "hi", "store": False,
                                    "tools": [{"type": "function", "name": "write_file",
                                               "parameters": TOOLS[0]["function"]["parameters"]}]}),
}


async def sse(url: str, path: str, body: dict) -> tuple[int, str, list[tuple[str | None, str]]]:
    """(status, raw text, [(event name, data)]) of a streamed answer."""
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as resp:
        text = (await resp.read()).decode()
        status = resp.status
    events: list[tuple[str | None, str]] = []
    for block in text.strip().split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((name, "\n".join(data)))
    return status, text, events


def errors_in(route: str, events: list[tuple[str | None, str]]) -> list[dict]:
    out = []
    for name, data in events:
        if data == "[DONE]":
            continue
        doc = json.loads(data)
        if name == "error" or (name is None and "error" in doc):
            out.append(doc)
    return out


def assert_failed(route: str, status: int, text: str, events: list[tuple[str | None, str]], words: str) -> None:
    """One error: an error status when nothing had been sent yet, else one terminal error event."""
    if status != 200:
        assert status == 502 and words in text
        return
    errs = errors_in(route, events)
    assert len(errs) == 1 and words in json.dumps(errs[0])
    assert not ended_normally(route, events)


def ended_normally(route: str, events: list[tuple[str | None, str]]) -> bool:
    names = [n for n, _ in events]
    datas = [d for _, d in events]
    if route.startswith("chat"):
        return "[DONE]" in datas
    if route == "messages":
        return "message_stop" in names
    return "response.completed" in names or "response.incomplete" in names


@pytest.mark.parametrize("route", list(ROUTES))
async def test_clean_early_end_is_an_error_on_every_route(fakes, router, route):
    up = await fakes()
    pieces = stream_of(["Hello ", "wor"], "m")[:-1]  # no finish_reason
    up.push(Step(sse=pieces, done=False))
    r = await router(cfg(up.url))
    path, body = ROUTES[route]
    status, _, events = await sse(r.url, path, body)
    assert status == 200
    errs = errors_in(route, events)
    assert len(errs) == 1 and "early" in json.dumps(errs[0])
    assert not ended_normally(route, events)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_reset_mid_call_is_an_error_on_every_route(fakes, router, route):
    up = await fakes()
    up.push(Step(sse=native_call(), reset_after=4))
    r = await router(cfg(up.url))
    path, body = ROUTES[route]
    status, text, events = await sse(r.url, path, body)
    assert_failed(route, status, text, events, "mid-stream")


@pytest.mark.parametrize("route", ["chat", "chat_tools"])
async def test_an_upstream_error_event_gives_one_error_event(fakes, router, route):
    up = await fakes()
    evs = [*stream_of(["Hello"], "m")[:-1], {"error": {"message": f"overloaded, key {SECRET}", "type": "x"}}]
    up.push(Step(sse=evs, done=False))
    r = await router(cfg(up.url))
    path, body = ROUTES[route]
    _, text, events = await sse(r.url, path, body)
    errs = errors_in(route, events)
    assert len(errs) == 1 and "overloaded" in errs[0]["error"]["message"]
    assert SECRET not in text and "[DONE]" not in text


async def test_finish_without_done_gets_done_added(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b"], "m"), done=False))
    r = await router(cfg(up.url))
    _, _text, events = await sse(r.url, *ROUTES["chat"])
    assert events[-1][1] == "[DONE]" and not errors_in("chat", events)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_escaped_key_is_redacted_on_decoded_text(fakes, router, route):
    up = await fakes()
    escaped = "\\u0073" + SECRET[1:]  # the key with its first letter JSON-escaped
    raw = 'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' \
          '"delta":{"content":"key: ' + escaped + '"},"finish_reason":null}]}\n\n'
    up.push(Step(sse=[raw, chunk("m", {}, "stop")]))
    r = await router(cfg(up.url))
    path, body = ROUTES[route]
    _, text, events = await sse(r.url, path, body)
    docs = [json.loads(d) for _, d in events if d != "[DONE]"]
    assert SECRET not in text and SECRET not in json.dumps(docs)
    # the text as the client joins it (a repaired stream may send it in more pieces than the upstream did)
    said = "".join(c["delta"].get("content") or "" for d in docs for c in d.get("choices", []))
    said += "".join(d["delta"].get("text") or d["delta"].get("partial_json") or "" for d in docs
                    if d.get("type") == "content_block_delta")
    said += "".join(d["delta"] for d in docs if d.get("type") == "response.output_text.delta")
    assert "key: [redacted]" in said, docs


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_key_in_an_events_other_lines_is_dropped(fakes, router, route):
    """A comment, an `id:`, an `event:` or an unknown field holding the key: the pass-through sent those lines as
    they came (only payloads were looked at)."""
    up = await fakes()
    data = "data: " + json.dumps(chunk("m", {"content": "hi"})) + "\n"
    up.push(Step(sse=[f": note {SECRET}\n\n", f"id: {SECRET}\n{data}\n", f"event: {SECRET}\n{data}\n",
                      f"{data}x-custom: {SECRET}\n\n", chunk("m", {}, "stop")]))
    r = await router(cfg(up.url))
    _, text, events = await sse(r.url, *ROUTES[route])
    assert SECRET not in text and not errors_in(route, events)


@pytest.mark.parametrize("route", ["chat", "chat_tools", "messages"])
async def test_an_endless_sse_line_is_a_terminal_error(fakes, router, route):
    up = await fakes()
    up.push(Step(sse=[*stream_of(["ok"], "m")[:1], "data: " + "x" * 300000], done=False))
    r = await router(cfg(up.url, "max_upstream_event_mb: 0.1"))
    path, body = ROUTES[route]
    status, text, events = await sse(r.url, path, body)
    assert_failed(route, status, text, events, "bytes")


async def test_a_body_past_the_bound_is_a_502(fakes, router):
    up = await fakes()
    up.push(Step(raw=b'{"choices": [], "pad": "' + b"x" * 300_000 + b'"}'))
    r = await router(cfg(up.url, "max_upstream_body_mb: 0.1"))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions",
                                                    json={**chat_body(False), "stream": False}) as resp:
        doc = await resp.json()
    assert resp.status == 502 and doc["error"]["code"] == "upstream_body_too_large"


@pytest.mark.parametrize("route", ["chat_tools", "messages", "responses"])
async def test_keepalives_flow_while_nothing_is_sent(fakes, router, route, monkeypatch):
    import asyncio

    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.2)
    up = await fakes()
    resume, paused = asyncio.Event(), asyncio.Event()
    evs = stream_of(["<tool_call>", '{"name": "write_file", "arguments": {"path": "a", "content": "b"}}',
                     "</tool_call>"], "m")
    up.push(Step(sse=evs, pause_after=2, resume=resume, paused=paused))
    r = await router(cfg(up.url))
    path, body = ROUTES[route]

    async def release() -> None:  # the upstream stays silent for 1 s (5 intervals) from when its pause begins
        await paused.wait()
        await asyncio.sleep(1.0)
        resume.set()

    releasing = asyncio.create_task(release())
    _, text, events = await sse(r.url, path, body)
    await releasing
    if route == "messages":
        assert sum(1 for n, _ in events if n == "ping") >= 3  # one at message_start, the rest keepalives
    else:
        assert ": keepalive" in text
    assert ended_normally(route, events)


@pytest.mark.parametrize("route", ["chat_tools", "messages", "responses"])
async def test_a_slow_first_chunk_gets_headers_and_a_keepalive_after_one_interval(fakes, router, route, monkeypatch):
    import asyncio
    import time

    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.4)
    up = await fakes()
    resume = asyncio.Event()
    up.push(Step(sse=stream_of(["fine"], "m"), pause_after=0, resume=resume))  # headers now, the first event later
    r = await router(cfg(up.url))
    path, body = ROUTES[route]
    keepalive = "event: ping" if route == "messages" else ": keepalive"
    start = time.monotonic()
    asyncio.get_running_loop().call_later(1.5, resume.set)
    seen: list[tuple[float, str]] = []
    async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body) as resp:
        seen.append((time.monotonic() - start, "headers"))
        async for line in resp.content:
            if line.strip():
                seen.append((time.monotonic() - start, line.decode().strip()))
    assert resp.status == 200
    pings = [t for t, what in seen if what == keepalive]
    assert seen[0][0] < 0.7 and pings and pings[0] < 0.7, seen  # one interval, not two (nor the first chunk's 1.5 s)
    assert len(pings) >= 3, seen  # then one every interval
