"""OpenAI routes that proxy to a backend: chat completions, completions, embeddings."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
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
from ..upstream.base import Refit, Unknown, UpstreamRequest
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
        sent, sent_raw = body, raw  # a chat stream asks for usage, which is counted (and withheld if not asked)
        withhold = stream and endpoint == "chat" and not asks_usage(body)
        refit: Refit | None = None
        if withhold:
            sent, sent_raw = with_usage(body, raw)
            refit = AsClientSent(body, raw, sent)
        if endpoint == "chat" and body.get("tools") and pipeline.repair_enabled(ctx, body):
            return await chat_repaired(request, ctx, sent, stream, sent_raw, withhold, body, raw)
        opened = await dispatch(ctx, UpstreamRequest(path, sent, sent_raw or None, ctx.upstream_headers, stream,
                                                       ctx.limits.max_upstream_event_bytes, refit=refit))
        if withhold and refuses_usage(opened.reply.status, opened.first):  # asked as the client sent it instead
            opened.upstream.refused.learn(opened.target.model, Unknown.STREAM_OPTIONS)
            await opened.close()
            withhold = False
            opened = await dispatch(ctx, UpstreamRequest(path, body, raw or None, ctx.upstream_headers, stream,
                                                           ctx.limits.max_upstream_event_bytes))
        try:
            rename = opened.target.model != ctx.route.requested
            if stream and opened.reply.status == 200:
                rewriter = RenameRewriter(opened.target.model or "", model) if rename else None
                return await pipe_stream(request, ctx, opened, rewriter, withhold)
            return respond_whole(ex, opened, model if rename else None)
        finally:
            await opened.close()

    return await common.handle_exchange(request, endpoint, handle)


def asks_usage(body: dict[str, Any]) -> bool:
    """Whether a chat stream's client asked for the usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    return type(options) is dict and options.get("include_usage") is True


_USAGE_OPTION = b'"stream_options":{"include_usage":true},'


def with_usage(body: dict[str, Any], raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The chat stream's body asking the upstream for usage, and its bytes: the client's with the member put in
    front when it had no `stream_options` (no other byte changes), else none (the body is encoded)."""
    options = body.get("stream_options")
    sent = {**body, "stream_options": {**(options if type(options) is dict else {}), "include_usage": True}}
    if "stream_options" in body or not raw.startswith(b"{"):
        return sent, b""
    return sent, b"{" + _USAGE_OPTION + raw[1:]


def refuses_usage(status: int, body: bytes) -> bool:
    """Whether an upstream's answer refuses the `stream_options` the router added (an older server or API version
    that knows no such parameter): the request is sent again as the client sent it, and so are the next ones to
    that upstream (`Unknown.STREAM_OPTIONS`, `AsClientSent`)."""
    return status in (400, 422) and b"stream_options" in body


@dataclass(frozen=True, slots=True, eq=False)
class AsClientSent:
    """How a chat stream that asks for usage (`with_usage`) goes to an upstream that refuses `stream_options`: as
    the client sent it, `client` (in its bytes, `client_raw`, for the body the route made from it, `sent`); a body
    made later (a repair's re-ask) with the client's own `stream_options`, if it sent any."""

    client: dict[str, Any]
    client_raw: bytes
    sent: dict[str, Any]

    def __call__(self, request: UpstreamRequest, unknown: Unknown) -> UpstreamRequest:
        if not unknown & Unknown.STREAM_OPTIONS:
            return request
        if request.body is self.sent:
            return request._replace(body=self.client, raw=self.client_raw or None)
        body = {k: v for k, v in request.body.items() if k != "stream_options"}
        if "stream_options" in self.client:
            body["stream_options"] = self.client["stream_options"]
        return request._replace(body=body, raw=None)


async def chat_repaired(request: web.Request, ctx: RequestContext, body: dict[str, Any], stream: bool,
                        raw: bytes = b"", withhold: bool = False, client_body: dict[str, Any] | None = None,
                        client_raw: bytes = b"") -> web.StreamResponse:
    """Chat with tool-call repair: parsed, repaired documents encoded back to JSON or SSE. `withhold`: `body` asks
    for usage where the client's (`client_body`) did not, and the usage chunk is not sent."""
    ex = ctx.exchange
    refit = AsClientSent(client_body, client_raw, body) if withhold and client_body is not None else None
    try:
        try:
            reply = await pipeline.chat(ctx, body, stream=stream, raw=raw, refit=refit)
        except pipeline.UpstreamStatus as up:
            if not (withhold and client_body is not None and refuses_usage(up.status, up.body)):
                raise
            up.learn(Unknown.STREAM_OPTIONS)
            withhold = False
            reply = await pipeline.chat(ctx, client_body, stream=stream, raw=client_raw)
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
    encoder = relay.OpenAIChunksNoUsage() if withhold else relay.OpenAIChunks()
    return await relay.write_stream(request, ex, reply.chunks, encoder, headers)


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
                      rewriter: RenameRewriter | None, withhold_usage: bool = False) -> web.StreamResponse:
    """Forward events as they arrive (a partial event waits for its end), through the one upstream reader: after
    the first byte no retry is possible, and a failure or a stream cut short ends with a terminal error event.
    `withhold_usage`: the usage-only chunk is counted but not sent (the router asked for it, the client not)."""
    ex = ctx.exchange
    reader = relay.UpstreamReader(opened, ex, ctx.metrics, ctx.limits.max_upstream_event_bytes)
    reader.withhold_usage = withhold_usage
    headers = {"x-request-id": ex.request_id, "x-agentgate-provider": opened.upstream.name}
    gate = relay.gate_for(reader.redactor.secrets)
    if gate is not None:  # a provider with a credential: its events are read, the secret looked for in their text
        items = relay.gated(_docs(reader, ctx.route.requested if rewriter is not None else None), gate)
        chunks = relay.OpenAIChunksNoUsage() if withhold_usage else relay.OpenAIChunks()
        return await relay.write_stream(request, ex, items, chunks, headers)
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
