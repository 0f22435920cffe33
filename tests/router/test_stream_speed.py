"""Streams at wire speed with tools declared: a slow upstream (100 pieces, 20 ms apart) stops at 80 % of its
stream until the client has seen at least half of the long payload (a tool argument, reasoning, prose). Held
output would never arrive while the upstream waits, so the check is exact however loaded the machine is."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import Step, chunk

N = 100
PAUSE_AT = 80  # events sent before the upstream waits for the client
PARAMS = {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
          "required": ["path", "content"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": PARAMS}}]
BODY = "".join(f"line {i}: some file content\n" for i in range(60))
ARGS = json.dumps({"path": "out.txt", "content": BODY})
REASONING = "".join(f"Step {i}, I consider the next part. " for i in range(60))

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


def _split(text: str, n: int) -> list[str]:
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)]


def upstream_events(kind: str) -> tuple[list[Any], str]:
    """(SSE events, the long payload the client must see half of early)."""
    if kind == "native":
        head = chunk("m", {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                                 "function": {"name": "write_file",
                                                                              "arguments": ""}}]})
        pieces = [chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                  for p in _split(ARGS, N - 2)]
        return [head, *pieces, chunk("m", {}, "tool_calls")], ARGS
    if kind == "hermes":
        text = f'<tool_call>\n{{"name": "write_file", "arguments": {ARGS}}}\n</tool_call>'
        return [chunk("m", {"content": p}) for p in _split(text, N - 1)] + [chunk("m", {}, "stop")], ARGS
    if kind == "think":
        text = f"<think>\n{REASONING}\n</think>\n\nDone."
        return [chunk("m", {"content": p}) for p in _split(text, N - 1)] + [chunk("m", {}, "stop")], REASONING
    text = REASONING
    return [chunk("m", {"content": p}) for p in _split(text, N - 1)] + [chunk("m", {}, "stop")], text


def request(route: str) -> tuple[str, dict[str, Any]]:
    msgs = [{"role": "user", "content": f"write the file ({route})"}]
    if route == "chat":
        return "/v1/chat/completions", {"model": "m", "stream": True, "messages": msgs, "tools": CHAT_TOOLS}
    if route == "messages":
        return "/v1/messages", {"model": "m", "stream": True, "max_tokens": 4096, "messages": msgs,
                                "tools": [{"name": "write_file", "input_schema": PARAMS}]}
    return "/v1/responses", {"model": "m", "stream": True, "input": "write the file (responses)", "store": False,
                             "tools": [{"type": "function", "name": "write_file", "parameters": PARAMS}]}


def payload_of(route: str, doc: dict[str, Any]) -> str:
    """The payload text (argument, reasoning or prose) one event carries."""
    if route == "chat":
        out = ""
        for choice in doc.get("choices") or []:
            delta = choice.get("delta") or {}
            out += (delta.get("content") or "") + (delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or []:
                out += (call.get("function") or {}).get("arguments") or ""
        return out
    if route == "messages":
        delta = doc.get("delta") or {}
        if doc.get("type") != "content_block_delta":
            return ""
        return delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
    if doc.get("type") in ("response.output_text.delta", "response.reasoning_text.delta",
                           "response.function_call_arguments.delta"):
        return str(doc.get("delta") or "")
    return ""


async def read_until_half(url: str, route: str, payload: str, resume: asyncio.Event) -> tuple[bool, str]:
    """Reads the whole stream; releases the upstream once half the payload arrived. (met before release,
    the payload text received)."""
    path, body = request(route)
    got, met = "", False
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as resp:
        assert resp.status == 200
        buf = b""
        async for data in resp.content.iter_any():
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                        got += payload_of(route, json.loads(line[6:]))
            if not resume.is_set() and len(got) >= len(payload) / 2:
                met = True
                resume.set()
    return met, got


@pytest.mark.parametrize("kind", ["native", "hermes", "think", "prose"])
async def test_payload_streams_while_the_upstream_is_still_generating(fakes, router, kind):
    events, payload = upstream_events(kind)
    up = await fakes()
    routes = ["chat", "messages", "responses"]
    resumes = {route: asyncio.Event() for route in routes}

    def step(body: dict[str, Any]) -> Step:  # each route's request names its route in the last message
        route = next(r for r in routes if f"({r})" in json.dumps(body["messages"][-1]))
        return Step(sse=events, interval=0.02, pause_after=PAUSE_AT, resume=resumes[route])

    up.push(step, step, step)
    r = await router(CFG.format(url=up.url))
    loop = asyncio.get_running_loop()
    fallback = [loop.call_later(30, e.set) for e in resumes.values()]  # a held stream fails, never hangs
    try:
        results = await asyncio.gather(*(read_until_half(r.url, route, payload, resumes[route])
                                         for route in routes))
    finally:
        for h in fallback:
            h.cancel()
    for route, (met, got) in zip(routes, results, strict=True):
        assert met, f"{route}: half the {kind} payload had not arrived by 80% of the upstream's stream"
        if kind in ("native", "hermes"):
            assert json.loads(got) == json.loads(ARGS), route  # the arguments, whole and valid
        elif kind == "think":
            assert got.startswith(REASONING.strip()) and got.endswith("Done."), route
        else:
            assert got == payload, route
