"""A scriptable OpenAI-compatible upstream on 127.0.0.1 (test fixture, never product code).

Each request pops the next scripted `Step` (or gets the default echo). Steps can fail with a status, wait for an
event before answering, stream SSE events with a pause or a connection reset after N events, or send raw bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Step:
    status: int = 200
    json: Any = None  # non-stream body
    raw: bytes | None = None  # body sent as is
    sse: list[Any] | None = None  # stream events: dict -> data: json, str/bytes -> sent as given
    headers: dict[str, str] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # wait for this before answering
    pause_after: int | None = None  # stream: after N events wait for `resume`
    resume: asyncio.Event | None = None
    paused: asyncio.Event | None = None  # stream: set when the pause at `pause_after` begins
    reset_after: int | None = None  # stream: abort the connection after N events
    done: bool = True  # stream: end with data: [DONE]
    interval: float = 0.0  # stream: seconds between events


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


def completion(content: str | None, model: str, *, tool_calls: list[dict] | None = None,
               finish_reason: str = "stop", usage: dict | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def message_of(events: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """(the assistant message, the finish reason) that chat-completion chunk documents add up to, choice 0's, as
    a client assembles them (a call's id from its first delta that has one, its name and arguments joined)."""
    content, reasoning, calls, finish = "", "", {}, None
    for e in events:
        for choice in e.get("choices") or []:
            delta = choice.get("delta") or {}
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for d in delta.get("tool_calls") or []:
                call = calls.setdefault(d["index"], {"id": "", "type": "function",
                                                     "function": {"name": "", "arguments": ""}})
                call["id"] = call["id"] or d.get("id") or ""
                call["function"]["name"] += (d.get("function") or {}).get("name") or ""
                call["function"]["arguments"] += (d.get("function") or {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [calls[k] for k in sorted(calls)]
    return message, finish


def stream_of(text_pieces: list[str], model: str, finish_reason: str = "stop") -> list[Any]:
    events: list[Any] = [chunk(model, {"role": "assistant", "content": ""})]
    events += [chunk(model, {"content": p}) for p in text_pieces]
    events.append(chunk(model, {}, finish_reason))
    return events


class FakeUpstream:
    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.script: deque[Step | Callable[[dict[str, Any]], Step]] = deque()
        self.requests: list[Recorded] = []
        self.cancelled = 0  # handlers whose client (the router) went away
        self.cancelled_event = asyncio.Event()
        self.arrived = asyncio.Event()  # set on every request
        self.url = ""
        self._runner: web.AppRunner | None = None

    # --- scripting -------------------------------------------------------------------------------------------
    def push(self, *steps: Step | Callable[[dict[str, Any]], Step]) -> FakeUpstream:
        self.script.extend(steps)
        return self

    async def wait_requests(self, n: int, timeout: float = 10.0) -> None:
        async def until() -> None:
            while len(self.requests) < n:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout)

    # --- server ----------------------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/{tail:.*}", self._handle)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self.requests.append(Recorded("/" + request.match_info["tail"], dict(request.headers), body,
                                      time.monotonic()))
        self.arrived.set()
        step = self.script.popleft() if self.script else self.default(body)
        if callable(step):
            step = step(body)
        try:
            return await self._answer(request, step, body)
        except asyncio.CancelledError:
            self.cancelled += 1
            self.cancelled_event.set()
            raise

    def default(self, body: Any) -> Step:
        model = body.get("model", "?") if isinstance(body, dict) else "?"
        if isinstance(body, dict) and "input" in body:
            return Step(json={"object": "list", "model": model, "data": [{"object": "embedding", "index": 0,
                                                                          "embedding": [0.1, 0.2]}],
                              "usage": {"prompt_tokens": 2, "total_tokens": 2}})
        text = "echo"
        if isinstance(body, dict) and body.get("messages"):
            last = body["messages"][-1].get("content")
            text = f"echo: {last}" if isinstance(last, str) else "echo"
        if isinstance(body, dict) and body.get("stream"):
            return Step(sse=stream_of(text.split(" "), model))
        if isinstance(body, dict) and "prompt" in body:
            return Step(json={"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
                              "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})
        return Step(json=completion(text, model))

    async def _answer(self, request: web.Request, step: Step, body: Any) -> web.StreamResponse:
        if step.gate is not None:
            await step.gate.wait()
        if step.sse is None or step.status != 200:
            payload = step.raw if step.raw is not None else json.dumps(
                step.json if step.json is not None else {"error": {"message": f"scripted {step.status}",
                                                                   "type": "server_error"}}).encode()
            return web.Response(status=step.status, body=payload, headers={"Content-Type": "application/json",
                                                                           **step.headers})
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", **step.headers})
        await resp.prepare(request)
        for i, ev in enumerate(step.sse):
            if step.reset_after is not None and i == step.reset_after:
                assert request.transport is not None
                request.transport.abort()
                return resp
            if step.pause_after is not None and i == step.pause_after and step.resume is not None:
                if step.paused is not None:
                    step.paused.set()
                await step.resume.wait()
            if step.interval and i:
                await asyncio.sleep(step.interval)
            if isinstance(ev, dict):
                data = b"data: " + json.dumps(ev).encode() + b"\n\n"
            else:
                data = ev.encode() if isinstance(ev, str) else ev
            await resp.write(data)
        if step.reset_after is not None and step.reset_after >= len(step.sse):
            assert request.transport is not None
            request.transport.abort()
            return resp
        if step.done:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
