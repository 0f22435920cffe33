"""Tool-call repair on chat completions, for every backend, stream and non-stream.

Policy per model entry (`repair.mode`, `repair.format`, `repair.on_failure`, `repair.retries`); the request header
`x-agentgate-repair: off` turns it off for one request. Requests without `tools` take the plain passthrough path.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from repair import ContentDelta, ReasoningDelta, RepairResult, StreamRepairer, ToolCallDelta, repair_message

from .config.model import RepairPolicy
from .dispatch import Opened, dispatch
from .errors import ApiError
from .exchange import Exchange
from .routing import Route
from .runtime import Runtime
from .sse import EventSplitter, encode_data, event_data
from .state import AppState

REPAIR_HEADER = "x-agentgate-repair"
REPAIRS_HEADER = "x-agentgate-repairs"


def _enabled(request: web.Request, policy: RepairPolicy, body: dict[str, Any]) -> bool:
    if policy.mode == "off" or request.headers.get(REPAIR_HEADER, "").lower() == "off":
        return False
    tools = body.get("tools")
    return isinstance(tools, list) and bool(tools)


def _wants_call(tool_choice: Any) -> bool:
    return tool_choice == "required" or isinstance(tool_choice, dict)


def _feedback(body: dict[str, Any], result: RepairResult, raw_text: str) -> dict[str, Any]:
    """The retry request: the invalid output plus what was wrong with it."""
    problems = "; ".join(f"{e.kind}: {e.detail}" if e.detail else e.kind for e in result.errors) or \
        "a tool call was required but none was made"
    names = ", ".join(t.get("function", {}).get("name", "?") for t in body.get("tools", []) if isinstance(t, dict))
    messages = list(body.get("messages", []))
    messages.append({"role": "assistant", "content": raw_text or ""})
    messages.append({"role": "user", "content": f"Your previous reply did not contain a valid tool call ({problems}). "
                     f"Reply again with one valid tool call to one of: {names}, with arguments matching its schema."})
    return {**body, "messages": messages}


def _record(ex: Exchange, result: RepairResult) -> None:
    outcome = result.outcome
    if outcome == "none" and ex.tool_outcome:
        return
    ex.tool_outcome = outcome
    ex.repairs = sorted({r.kind for r in result.repairs})
    ex.failures = sorted({e.kind for e in result.errors})


def _failed(result: RepairResult, tool_choice: Any) -> bool:
    return bool(result.errors) or (_wants_call(tool_choice) and not result.tool_calls)


async def maybe_repaired(request: web.Request, state: AppState, rt: Runtime, ex: Exchange, route: Route,
                         body: dict[str, Any], raw: bytes, stream: bool) -> web.StreamResponse | None:
    policy = route.model.repair
    if not _enabled(request, policy, body):
        return None
    headers = {"x-request-id": ex.request_id}
    attempts = policy.retries + 1 if policy.on_failure == "retry" else 1
    for attempt in range(attempts):
        last_try = attempt == attempts - 1
        opened = await dispatch(rt, state.metrics, ex, route, body, raw, "/chat/completions", stream, headers)
        try:
            if stream and opened.reply.status == 200:
                outcome = await _stream(request, ex, opened, route, body, policy, retry_possible=not last_try)
            elif opened.reply.status == 200:
                outcome = _whole(ex, opened, route, body, policy, retry_possible=not last_try)
            else:
                from .api.openai_routes import respond_whole

                return respond_whole(ex, opened, route.requested)
        finally:
            await opened.close()
        if isinstance(outcome, web.StreamResponse):
            return outcome
        body, raw = _feedback(body, outcome[0], outcome[1]), b""
    raise AssertionError("unreachable: the last attempt always answers")


def _whole(ex: Exchange, opened: Opened, route: Route, body: dict[str, Any], policy: RepairPolicy,
           retry_possible: bool) -> web.Response | tuple[RepairResult, str]:
    try:
        doc = json.loads(opened.first)
    except ValueError:
        raise ApiError(502, f"Upstream {opened.upstream.name!r} returned a body that is not JSON.",
                       "upstream_invalid_response") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        raise ApiError(502, f"Upstream {opened.upstream.name!r} returned no choices.", "upstream_invalid_response")
    ex.usage_from(doc.get("usage"))
    ex.status = 200
    changed = False
    kinds: list[str] = []
    tool_choice = body.get("tool_choice")
    for choice in doc["choices"]:
        msg = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        text = content if isinstance(content, str) else None
        result = repair_message(
            text, body.get("tools"), tool_calls=msg.get("tool_calls") or None, tool_choice=tool_choice,
            parallel_tool_calls=body.get("parallel_tool_calls", True) is not False, format=policy.format,
            reasoning_content=msg.get("reasoning_content"), mode=policy.mode,
        )
        _record(ex, result)
        if _failed(result, tool_choice):
            if policy.on_failure == "retry" and retry_possible:
                return result, text or ""
            if policy.on_failure == "error":
                raise _invalid_error(result)
        if result.outcome in ("repaired", "failed") or result.reasoning_content != msg.get("reasoning_content") \
                or (result.content or None) != (text or None):
            changed = True
            new_msg = result.message()
            choice["message"] = {**{k: v for k, v in msg.items() if k not in ("content", "tool_calls",
                                                                              "reasoning_content")}, **new_msg}
            if result.tool_calls:
                choice["finish_reason"] = "tool_calls"
            elif choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "stop"
            kinds += [r.kind for r in result.repairs]
    rename = opened.target.model != route.requested
    if rename:
        doc["model"] = route.requested
    payload = json.dumps(doc, ensure_ascii=False).encode() if changed or rename else opened.first
    headers = {"Content-Type": "application/json", "x-request-id": ex.request_id,
               "x-agentgate-provider": opened.upstream.name}
    if kinds:
        headers[REPAIRS_HEADER] = ",".join(sorted(set(kinds)))
    return web.Response(status=200, body=payload, headers=headers)


def _invalid_error(result: RepairResult) -> ApiError:
    detail = "; ".join(f"{e.kind}: {e.detail}" if e.detail else e.kind for e in result.errors) or \
        "a tool call was required but the model made none"
    return ApiError(502, f"The model's tool call could not be made valid ({detail}).", "invalid_tool_call",
                    type="upstream_error")


class _StreamState:
    def __init__(self, requested: str) -> None:
        self.envelope: dict[str, Any] = {"id": "chatcmpl-agentgate", "object": "chat.completion.chunk",
                                         "created": int(time.time()), "model": requested}
        self.requested = requested
        self.finish_reason: str | None = None
        self.usage_events: list[dict[str, Any]] = []
        self.raw_text: list[str] = []
        self.role_sent = False

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return encode_data({**self.envelope, "choices": [{"index": 0, "delta": delta,
                                                          "finish_reason": finish_reason}]})


async def _stream(request: web.Request, ex: Exchange, opened: Opened, route: Route, body: dict[str, Any],
                  policy: RepairPolicy, retry_possible: bool) -> web.StreamResponse | tuple[RepairResult, str]:
    """Upstream SSE -> StreamRepairer -> client SSE. Prose streams through at once; only text that may begin a
    call is held back. The client response starts with the first byte we actually send, so a retry stays possible
    while only held-back text has arrived."""
    tool_choice = body.get("tool_choice")
    repairer = StreamRepairer(body.get("tools"), tool_choice=tool_choice,
                              parallel_tool_calls=body.get("parallel_tool_calls", True) is not False,
                              format=policy.format, mode=policy.mode)
    st = _StreamState(route.requested)
    resp: web.StreamResponse | None = None
    out: list[bytes] = []

    async def emit(events: list[Any]) -> None:
        nonlocal resp
        for ev in events:
            if isinstance(ev, ContentDelta):
                if ev.text:
                    out.append(st.chunk({"content": ev.text}))
            elif isinstance(ev, ReasoningDelta):
                if ev.text:
                    out.append(st.chunk({"reasoning_content": ev.text}))
            elif isinstance(ev, ToolCallDelta):
                out.append(st.chunk({"tool_calls": [{"index": ev.index, "id": ev.id, "type": "function",
                                                     "function": {"name": ev.name, "arguments": ev.arguments}}]}))
        if not out:
            return
        if resp is None:
            resp = web.StreamResponse(status=200, headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-request-id": ex.request_id,
                "x-agentgate-provider": opened.upstream.name})
            ex.status = 200
            await resp.prepare(request)
            ex.ttft = time.perf_counter() - ex.started
            await resp.write(st.chunk({"role": "assistant", "content": ""}))
        data = b"".join(out)
        out.clear()
        await resp.write(data)

    splitter = EventSplitter()
    failure: ApiError | None = None
    try:
        chunk = opened.first
        chunks = opened.reply.chunks()
        while True:
            for event in splitter.feed(chunk):
                data = event_data(event)
                if data is None or data.strip() == b"[DONE]":
                    continue
                await emit(_consume(data, st, repairer, ex))
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
        rest = splitter.rest()
        if rest.strip():
            data = event_data(rest + b"\n\n")
            if data and data.strip() != b"[DONE]":
                await emit(_consume(data, st, repairer, ex))
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
            asyncio.TimeoutError):
        opened.upstream.breaker.failure()
        failure = ApiError(502, f"Upstream {opened.upstream.name!r} failed mid-stream.", "upstream_reset_mid_stream")
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        ex.error = "client_disconnected"
        return resp or web.StreamResponse()
    if failure is not None:
        ex.error = failure.code
        if resp is None:
            raise failure
        await resp.write(failure.sse_event())
        await resp.write_eof()
        return resp
    final = repairer.finish()
    result = repairer.result
    _record(ex, result)
    if _failed(result, tool_choice) and resp is None:
        if policy.on_failure == "retry" and retry_possible:
            return result, "".join(st.raw_text)
        if policy.on_failure == "error":
            raise _invalid_error(result)
    await emit(final)
    if resp is None:  # an empty answer still gets a well-formed stream
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream",
                                                       "x-request-id": ex.request_id})
        ex.status = 200
        await resp.prepare(request)
        await resp.write(st.chunk({"role": "assistant", "content": ""}))
    reason = "tool_calls" if result.tool_calls else (
        "stop" if st.finish_reason in (None, "tool_calls") else st.finish_reason)
    tail = st.chunk({}, reason) + b"".join(encode_data({**st.envelope, **u}) for u in st.usage_events)
    try:
        await resp.write(tail + b"data: [DONE]\n\n")
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        ex.error = "client_disconnected"
    return resp


def _consume(data: bytes, st: _StreamState, repairer: StreamRepairer, ex: Exchange) -> list[Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    if "error" in doc:
        raise aiohttp.ClientPayloadError(str(doc.get("error"))[:200])
    for k in ("id", "created", "system_fingerprint"):
        if k in doc:
            st.envelope[k] = doc[k]
    if doc.get("usage"):
        ex.usage_from(doc["usage"])
        st.usage_events.append({"choices": [], "usage": doc["usage"]})
    events: list[Any] = []
    for choice in doc.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if choice.get("finish_reason"):
            st.finish_reason = choice["finish_reason"]
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events += repairer.feed_reasoning(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            st.raw_text.append(content)
            events += repairer.feed(content)
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls:
            events += repairer.feed_tool_calls(calls)
    return events
