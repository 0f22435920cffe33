"""OpenAI routes that proxy to a backend: chat completions, completions, embeddings."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from ..config.model import ClientKey
from ..dispatch import Opened, dispatch
from ..errors import ApiError
from ..exchange import Exchange
from ..runtime import Runtime
from ..sse import RenameRewriter, Rewriter, encode_data
from ..state import STATE
from . import common

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "chat", "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "completions", "/completions")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "embeddings", "/embeddings")


async def proxy(request: web.Request, endpoint: str, path: str) -> web.StreamResponse:
    async def handle(rt: Runtime, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
        raw, body = await common.read_json(request, rt)
        model = common.require_model(body)
        route = common.resolve(rt, ex, key, model)
        stream = ex.stream = body.get("stream") is True and endpoint != "embeddings"
        if endpoint == "chat" and body.get("tools"):
            from .. import pipeline

            if pipeline.repair_enabled(request, route.model.repair, body):
                return await chat_repaired(request, ex, route, body, stream, rt)
        opened = await dispatch(rt, request.app[STATE].metrics, ex, route, body, raw, path, stream,
                                common.upstream_headers(request, ex.request_id))
        try:
            rename = opened.target.model != route.requested
            if stream and opened.reply.status == 200:
                rewriter = RenameRewriter(opened.target.model or "", model) if rename else None
                return await pipe_stream(request, ex, opened, rewriter)
            return respond_whole(ex, opened, model if rename else None)
        finally:
            await opened.close()

    return await common.handle_exchange(request, endpoint, handle)


async def chat_repaired(request: web.Request, ex: Exchange, route: Any, body: dict[str, Any],
                        stream: bool, rt: Any = None) -> web.StreamResponse:
    """Chat with tool-call repair: parsed, repaired documents encoded back to JSON or SSE."""
    from ..pipeline import UpstreamStatus, chat

    try:
        reply = await chat(request, request.app[STATE], ex, route, body, stream=stream, rt=rt)
    except UpstreamStatus as up:
        ex.status = up.status
        return web.Response(status=up.status, body=up.body, headers={"Content-Type": up.content_type,
                                                                    "x-request-id": ex.request_id})
    headers = {"x-request-id": ex.request_id, **reply.headers}
    if reply.doc is not None:
        return web.Response(body=json.dumps(reply.doc, ensure_ascii=False).encode(),
                            headers={**JSON_HEADERS, **headers})
    assert reply.chunks is not None
    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    await resp.prepare(request)
    ex.ttft = time.perf_counter() - ex.started
    try:
        async for chunk in reply.chunks:
            await resp.write(encode_data(chunk))
        await resp.write(b"data: [DONE]\n\n")
    except ApiError as err:
        ex.error = err.code
        await _write_quietly(resp, err.sse_event())
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        ex.error = "client_disconnected"
        return resp
    await _write_eof_quietly(resp, ex)
    return resp


async def _write_quietly(resp: web.StreamResponse, data: bytes) -> None:
    try:
        await resp.write(data)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass


async def _write_eof_quietly(resp: web.StreamResponse, ex: Exchange) -> None:
    try:
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        ex.error = "client_disconnected"


def respond_whole(ex: Exchange, opened: Opened, rename_to: str | None) -> web.Response:
    """A non-stream answer (or an upstream error status), body forwarded byte for byte unless renamed."""
    status = opened.reply.status
    body = opened.first
    if status in (401, 403):  # our upstream credentials were refused: not the client's doing, never echo it
        raise ApiError(502, f"Upstream {opened.upstream.name!r} refused the configured credentials ({status}).",
                       "upstream_auth")
    doc: Any = None
    if status == 200:
        try:
            doc = json.loads(body)
        except ValueError:
            raise ApiError(502, f"Upstream {opened.upstream.name!r} returned a body that is not JSON.",
                           "upstream_invalid_response") from None
        if isinstance(doc, dict):
            ex.usage_from(doc.get("usage"))
            if rename_to is not None and "model" in doc:
                doc["model"] = rename_to
                body = json.dumps(doc, ensure_ascii=False).encode()
    else:
        body = scrub(body, opened.upstream.config.api_key)
    ex.status = status
    ctype = opened.reply.headers.get("Content-Type", "application/json")
    return web.Response(status=status, body=body, headers={"Content-Type": ctype, "x-request-id": ex.request_id,
                                                           "x-agentgate-provider": opened.upstream.name})


def scrub(body: bytes, secret: str | None) -> bytes:
    if secret and secret.encode() in body:
        body = body.replace(secret.encode(), b"[redacted]")
    return body


class _Truncated(Exception):
    """The upstream ended its stream without `data: [DONE]`."""


async def pipe_stream(request: web.Request, ex: Exchange, opened: Opened,
                      rewriter: Rewriter | None) -> web.StreamResponse:
    """Forward events as they arrive (a partial event waits for its end). After the first byte no retry is
    possible: a failure, or a stream the upstream ends without `data: [DONE]`, ends it with a terminal error
    event."""
    rewriter = rewriter or Rewriter()
    secret = opened.upstream.config.api_key  # an upstream that echoes it mid-stream must not reach the client
    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, "x-request-id": ex.request_id,
                                                   "x-agentgate-provider": opened.upstream.name})
    ex.status = 200
    await resp.prepare(request)
    try:
        chunk = rewriter.feed(opened.first)
        if chunk:
            await resp.write(scrub(chunk, secret))
        ex.ttft = time.perf_counter() - ex.started
        async for raw in opened.reply.chunks():
            chunk = rewriter.feed(raw)
            if not chunk:
                continue
            await resp.write(scrub(chunk, secret))
            if b'"usage"' in chunk:
                _usage_from_chunk(ex, chunk)
        if not rewriter.done:
            raise _Truncated
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
            asyncio.TimeoutError, _Truncated) as exc:
        opened.upstream.breaker.failure()
        kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else \
            "truncated" if isinstance(exc, _Truncated) else "reset"
        state = request.app[STATE]
        state.metrics.child(state.metrics.upstream_errors, opened.upstream.name, kind).inc()
        ex.error = f"upstream_{kind}_mid_stream"
        what = {"timeout": "stalled", "reset": "failed", "truncated": "ended the stream early"}[kind]
        err = ApiError(502, f"Upstream {opened.upstream.name!r} {what} mid-stream.", ex.error)
        await _write_quietly(resp, err.sse_event())
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        ex.error = "client_disconnected"
        return resp
    await _write_eof_quietly(resp, ex)
    return resp


def _usage_from_chunk(ex: Exchange, chunk: bytes) -> None:
    for line in chunk.split(b"\n"):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                doc = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(doc, dict):
                ex.usage_from(doc.get("usage"))
