"""OpenAI routes that proxy to a backend: chat completions, completions, embeddings."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from .. import jsoncodec, pipeline, relay
from ..config.model import ClientKey
from ..context import RequestContext
from ..dialects.openai_request import check_request
from ..dispatch import Opened, dispatch
from ..errors import ApiError
from ..exchange import Exchange
from ..live_config import LiveConfig
from ..sse import RenameRewriter
from ..upstream.base import UpstreamRequest
from . import common


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "chat", "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "completions", "/completions")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await proxy(request, "embeddings", "/embeddings")


async def proxy(request: web.Request, endpoint: str, path: str) -> web.StreamResponse:
    async def handle(rt: LiveConfig, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
        raw, body = await common.read_json(request, rt)
        model = common.require_model(body)
        ctx = common.resolve(request, rt, ex, key, model)
        check_request(endpoint, body, tools_checked=ctx.tool_indexes.known.holds(body.get("tools")))
        stream = ex.stream = body.get("stream") is True and endpoint != "embeddings"
        if endpoint == "chat" and body.get("tools") and pipeline.repair_enabled(ctx, body):
            return await chat_repaired(request, ctx, body, stream, raw)
        opened = await dispatch(ctx, UpstreamRequest(path, body, raw or None, ctx.upstream_headers, stream,
                                                       ctx.limits.max_upstream_event_bytes))
        try:
            rename = opened.target.model != ctx.route.requested
            if stream and opened.reply.status == 200:
                rewriter = RenameRewriter(opened.target.model or "", model) if rename else None
                return await pipe_stream(request, ctx, opened, rewriter)
            return respond_whole(ex, opened, model if rename else None)
        finally:
            await opened.close()

    return await common.handle_exchange(request, endpoint, handle)


async def chat_repaired(request: web.Request, ctx: RequestContext, body: dict[str, Any], stream: bool,
                        raw: bytes = b"") -> web.StreamResponse:
    """Chat with tool-call repair: parsed, repaired documents encoded back to JSON or SSE."""
    ex = ctx.exchange
    try:
        reply = await pipeline.chat(ctx, body, stream=stream, raw=raw)
    except pipeline.UpstreamStatus as up:
        ex.status = up.status
        return web.Response(status=up.status, body=up.body, headers={"Content-Type": up.content_type,
                                                                    "x-request-id": ex.request_id,
                                                                    "x-agentgate-provider": up.provider})
    headers = {"x-request-id": ex.request_id, **reply.headers}
    if reply.doc is not None:
        body_out = reply.raw if reply.raw is not None else jsoncodec.dumps(reply.doc)
        return web.Response(body=body_out, headers={**common.JSON_HEADERS, **headers})
    assert reply.chunks is not None
    return await relay.write_stream(request, ex, reply.chunks, relay.OpenAIChunks(), headers)
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
            doc = jsoncodec.loads(body)
        except (ValueError, RecursionError):
            raise ApiError(502, f"Upstream {opened.upstream.name!r} returned a body that is not JSON.",
                           "upstream_invalid_response") from None
        if isinstance(doc, dict):
            ex.usage_from(doc.get("usage"))
            if rename_to is not None and "model" in doc:
                doc["model"] = rename_to
                try:
                    body = json.dumps(doc, ensure_ascii=False).encode()
                except RecursionError:  # the upstream's answer, not the client's request, nests too deep
                    raise ApiError(502, f"Upstream {opened.upstream.name!r} returned an answer nested deeper than "
                                        "the router can send on.", "upstream_invalid_response") from None
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


async def pipe_stream(request: web.Request, ctx: RequestContext, opened: Opened,
                      rewriter: RenameRewriter | None) -> web.StreamResponse:
    """Forward events as they arrive (a partial event waits for its end), through the one upstream reader: after
    the first byte no retry is possible, and a failure or a stream cut short ends with a terminal error event."""
    ex = ctx.exchange
    reader = relay.UpstreamReader(opened, ex, ctx.metrics, ctx.limits.max_upstream_event_bytes)
    headers = {"x-request-id": ex.request_id, "x-agentgate-provider": opened.upstream.name}
    gate = relay.gate_for(reader.redactor.secrets)
    if gate is not None:  # a provider with a credential: its events are read, the secret looked for in their text
        items = relay.gated(_docs(reader, ctx.route.requested if rewriter is not None else None), gate)
        return await relay.write_stream(request, ex, items, relay.OpenAIChunks(), headers)
    encoder = relay.PassThrough(reader, rewriter.event if rewriter is not None else None)
    return await relay.write_stream(request, ex, reader.raw(), encoder, headers)


async def _docs(reader: relay.UpstreamReader, model: str | None) -> AsyncGenerator[list[Any], None]:
    """The upstream's chunk documents (under the client's `model` name when it is another)."""
    async for docs in reader.docs():
        if model is not None:
            for doc in docs:
                if "model" in doc:
                    doc["model"] = model
        yield docs
