"""A scriptable Anthropic Messages API server on 127.0.0.1 (test fixture, never product code).

`POST /v1/messages` checks what the real API checks that matters to a translator (the `x-api-key` and
`anthropic-version` headers, `model`/`max_tokens`/`messages`, block shapes, tool_result ids answering the
preceding tool_use blocks, no whitespace-only text, tool names as documented, `tools` declared wherever tool_use or
tool_result blocks are sent) and answers with the next scripted `AStep`, or by default echoes the last user text.
Streams are written as the public API reference shows them: `event:` + `data:` lines, `message_start`, `ping`,
`content_block_*`, `message_delta`, `message_stop`.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "sk-ant-test-secret"
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # a client tool's name, as Anthropic documents it


@dataclass
class AStep:
    status: int = 200
    json: Any = None  # non-stream body (a Message or an error document)
    events: list[tuple[str, dict[str, Any]]] | None = None  # stream: (event name, data)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ARecorded:
    headers: dict[str, str]
    body: Any
    at: float


def error_doc(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def message(content: list[dict[str, Any]], model: str, *, stop_reason: str = "end_turn",
            stop_sequence: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {"id": "msg_01FakeAnthropic", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": usage or {"input_tokens": 12, "output_tokens": 6}}


def stream_events(blocks: list[dict[str, Any]], model: str, *, stop_reason: str = "end_turn",
                  stop_sequence: str | None = None, input_tokens: int = 12, output_tokens: int = 6,
                  cache_read: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """The event sequence for a message made of `blocks`; text and thinking arrive in two deltas each, tool input
    as partial JSON in two pieces."""
    start = {"id": "msg_01FakeStream", "type": "message", "role": "assistant", "model": model, "content": [],
             "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": cache_read,
                       "cache_creation_input_tokens": 0}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start}),
                                                ("ping", {"type": "ping"})]
    for i, block in enumerate(blocks):
        kind = block["type"]
        if kind == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            text = block["text"]
            for piece in (text[: len(text) // 2], text[len(text) // 2:]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": piece}}))
        elif kind == "thinking":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "thinking", "thinking": "",
                                                                     "signature": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "thinking_delta",
                                                             "thinking": block["thinking"]}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "signature_delta", "signature": "EqQBCgIY"}}))
        elif kind == "tool_use":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "tool_use", "id": block["id"],
                                                                     "name": block["name"], "input": {}}}))
            raw = json.dumps(block["input"])
            for piece in ("", raw[:5], raw[5:]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                     "usage": {"output_tokens": output_tokens}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def check_request(headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]] | None:
    """What the real API would refuse, as (status, error document); None when the request is acceptable."""
    if headers.get("x-api-key") != API_KEY:
        return 401, error_doc("authentication_error", "invalid x-api-key")
    if headers.get("anthropic-version") != "2023-06-01":
        return 400, error_doc("invalid_request_error", "anthropic-version header is required")
    if not isinstance(body, dict):
        return 400, error_doc("invalid_request_error", "body must be an object")
    if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int):
        return 400, error_doc("invalid_request_error", "model and max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, error_doc("invalid_request_error", "messages: Field required")
    pending_ids: set[str] = set()
    turns: list[tuple[str, list[Any]]] = []  # consecutive messages of one role are one turn, as the API combines them
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role == "system":  # (Claude Code sends some inside messages, as the Messages API takes them)
            continue
        if role not in ("user", "assistant"):
            return 400, error_doc("invalid_request_error", f"messages.{i}: role must be user or assistant")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return 400, error_doc("invalid_request_error", f"messages.{i}: content must be non-empty")
        for j, b in enumerate(blocks):  # (signed by Anthropic: one made by another model has none)
            if role == "assistant" and isinstance(b, dict) and b.get("type") == "thinking" and not b.get("signature"):
                return 400, error_doc("invalid_request_error",
                                      f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, list(blocks)))
    for i, (role, blocks) in enumerate(turns):
        if not isinstance(blocks, list) or not blocks:
            return 400, error_doc("invalid_request_error", f"messages.{i}: content must be non-empty")
        answered: set[str] = set()
        for b in blocks:
            if b.get("type") == "text" and not b.get("text", "").strip():
                return 400, error_doc("invalid_request_error", f"messages.{i}: text content blocks must contain "
                                      "non-whitespace text")
            if b.get("type") == "tool_use":
                if role != "assistant" or not isinstance(b.get("input"), dict):
                    return 400, error_doc("invalid_request_error", f"messages.{i}: bad tool_use block")
                pending_ids.add(b["id"])
            if b.get("type") == "tool_result":
                if b.get("tool_use_id") not in pending_ids:
                    return 400, error_doc("invalid_request_error", f"messages.{i}: unexpected tool_use_id")
                answered.add(b["tool_use_id"])
        if role == "user" and pending_ids:
            if answered != pending_ids:
                return 400, error_doc("invalid_request_error", f"messages.{i}: tool_use ids without tool_result")
            pending_ids = set()
    if not body.get("tools") and any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result")
                                     for _, blocks in turns for b in blocks):
        return 400, error_doc("invalid_request_error", "Requests which include `tool_use` or `tool_result` blocks "
                              "must define tools.")
    for i, t in enumerate(body.get("tools") or []):  # (a server tool, `type` set, has no input_schema)
        if not isinstance(t.get("name"), str) or (t.get("type", "custom") == "custom"
                                                 and not isinstance(t.get("input_schema"), dict)):
            return 400, error_doc("invalid_request_error", "tools: name and input_schema required")
        if t.get("type", "custom") == "custom" and not TOOL_NAME.fullmatch(t["name"]):
            return 400, error_doc("invalid_request_error", f"tools.{i}.custom.name: String should match pattern "
                                  f"'^{TOOL_NAME.pattern}$'")
    return None


class FakeAnthropic:
    def __init__(self) -> None:
        self.script: deque[AStep | Callable[[dict[str, Any]], AStep]] = deque()
        self.requests: list[ARecorded] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def push(self, *steps: AStep | Callable[[dict[str, Any]], AStep]) -> FakeAnthropic:
        self.script.extend(steps)
        return self

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._handle)
        app.router.add_post("/v1/messages/count_tokens", self._count)
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

    def default(self, body: dict[str, Any]) -> AStep:
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if b["type"] == "text")
        blocks = [{"type": "text", "text": f"echo: {text}"}]
        if body.get("stream"):
            return AStep(events=stream_events(blocks, body["model"]))
        return AStep(json=message(blocks, body["model"]))

    async def _count(self, request: web.Request) -> web.StreamResponse:
        """count_tokens: a count of its own (the body's length over 3), so a test can tell it from an estimate."""
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(ARecorded(headers, json.loads(raw), time.monotonic()))
        if headers.get("x-api-key") != API_KEY:
            return web.json_response(error_doc("authentication_error", "invalid x-api-key"), status=401)
        return web.json_response({"input_tokens": len(raw) // 3})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(ARecorded(headers, body, time.monotonic()))
        refused = check_request(headers, body)
        if refused is not None:
            return web.json_response(refused[1], status=refused[0])
        step = self.script.popleft() if self.script else self.default(body)
        if callable(step):
            step = step(body)
        if step.events is None or step.status != 200:
            return web.json_response(step.json, status=step.status, headers=step.headers)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", **step.headers})
        await resp.prepare(request)
        for name, data in step.events:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        await resp.write_eof()
        return resp
