"""OpenAI routes that proxy to a backend: chat completions, completions, embeddings."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .. import jsoncodec, pipeline, relay
from ..config.model import ClientKey
from ..context import RequestContext
from ..custom_tools import ChunkCalls, custom_names, whole_as_custom
from ..dialects.openai_request import check_request
from ..dispatch import Opened, dispatch
from ..errors import ApiError
from ..exchange import Exchange
from ..live_config import LiveConfig
from ..overflow import ContextOverflowError
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
        # a known history's first messages passed this check on an earlier turn (see `KnownHistory.prefix`)
        known = ctx.history.prefix(body.get("messages")) if endpoint == "chat" and ctx.history is not None else None
        check_request(endpoint, body, tools_checked=ctx.tool_indexes.known.holds(body.get("tools")),
                      messages_checked=min(known.facts.checked, known.count) if known is not None else 0)
        if known is not None and known.count > known.facts.checked:
            known.facts.checked = known.count
        stream = ex.stream = body.get("stream") is True and endpoint != "embeddings"
        # a chat stream asks for usage, which is counted (and withheld if not asked)
        ask = ChatAsk(body, raw, stream and not asks_usage(body)) if endpoint == "chat" else None
        if ask is not None and body.get("tools") and pipeline.repair_enabled(ctx, body):
            return await chat_repaired(request, ctx, ask, stream)
        if ask is None:
            opened = await dispatch(ctx, UpstreamRequest(path, body, raw or None, ctx.upstream_headers, stream,
                                                           ctx.limits.max_upstream_event_bytes))
        else:
            opened, ask = await open_chat(ctx, ask, stream)
        withhold = ask is not None and ask.withhold
        customs = engine_customs(opened, body) if ask is not None else frozenset()
        try:
            rename = opened.target.model != ctx.route.requested
            if stream and opened.reply.status == 200:
                rewriter = RenameRewriter(opened.target.model or "", model) if rename else None
                return await pipe_stream(request, ctx, opened, rewriter, withhold, customs)
            return respond_whole(ex, opened, model if rename else None, customs, PROMPT_PARAMS[endpoint])
        finally:
            await opened.close()

    return await common.handle_exchange(request, endpoint, handle)


PROMPT_PARAMS = {"chat": "messages", "completions": "prompt", "embeddings": "input"}  # where each holds its prompt


def engine_customs(opened: Opened, body: dict[str, Any]) -> frozenset[str]:
    """The custom tools a chat request declares when a local engine answers it: it got them as functions of one
    string `input` (`upstream.engine`), and its calls to them go back to the client as custom calls."""
    return custom_names(body.get("tools")) if opened.upstream.kind == "engine" else frozenset()


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


_NOT_TAKEN = re.compile(rb"(?i)unsupported|not supported|instead")


def refuses_max_tokens(status: int, body: bytes) -> bool:
    """Whether an upstream's answer refuses `max_tokens` for `max_completion_tokens` (OpenAI's reasoning models:
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."),
    not a limit that is too large (vLLM names both fields then): the limit is sent again under the new name, and so
    is the next one to that upstream (`Unknown.MAX_TOKENS`)."""
    return status in (400, 422) and b"max_completion_tokens" in body and b"max_tokens" in body \
        and _NOT_TAKEN.search(body) is not None


def with_completion_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body with its `max_tokens` as `max_completion_tokens` (one the body sets already stays)."""
    out = {k: v for k, v in body.items() if k != "max_tokens"}
    out.setdefault("max_completion_tokens", body["max_tokens"])
    return out


@dataclass(frozen=True, slots=True, eq=False)
class AsClientSent:
    """How a chat request goes to an upstream that refused some of it: a stream that asks for usage (`with_usage`)
    as the client sent it, `client` (in its bytes, `client_raw`, for the body the route made from it, `sent`), to
    one that refuses `stream_options`, a body made later (a repair's re-ask) with the client's own
    `stream_options`, if it sent any; and `max_tokens` as `max_completion_tokens` to one that refuses the old
    name."""

    client: dict[str, Any]
    client_raw: bytes
    sent: dict[str, Any]

    def __call__(self, request: UpstreamRequest, unknown: Unknown) -> UpstreamRequest:
        if unknown & Unknown.STREAM_OPTIONS and request.body is not self.client:
            request = self._usage_as_sent(request)
        if unknown & Unknown.MAX_TOKENS and "max_tokens" in request.body:
            request = request._replace(body=with_completion_tokens(request.body), raw=None)
        return request

    def _usage_as_sent(self, request: UpstreamRequest) -> UpstreamRequest:
        if request.body is self.sent:
            return request._replace(body=self.client, raw=self.client_raw or None)
        body = {k: v for k, v in request.body.items() if k != "stream_options"}
        if "stream_options" in self.client:
            body["stream_options"] = self.client["stream_options"]
        return request._replace(body=body, raw=None)


@dataclass(frozen=True, slots=True)
class ChatAsk:
    """A chat request: the client's body (`client`; `client_raw`, its bytes, b"" once the router changed it), and
    whether the router asks for the usage the client did not (`withhold`: a stream's usage chunk is then counted,
    not sent on)."""

    client: dict[str, Any]
    client_raw: bytes
    withhold: bool

    def sent(self) -> tuple[dict[str, Any], bytes, Refit]:
        """The body the router sends, its bytes (b"": encoded where it is sent), and how it goes to an upstream
        that refused some of it before."""
        body, raw = with_usage(self.client, self.client_raw) if self.withhold else (self.client, self.client_raw)
        return body, raw, AsClientSent(self.client, self.client_raw, body)

    def refused(self, status: int, answer: bytes) -> Unknown:
        """What an upstream's answer refuses that the router can do without: the `stream_options` it added, or the
        client's `max_tokens` under that name (OpenAI deprecated it for `max_completion_tokens`, the same limit,
        and its reasoning models take only the new name)."""
        if self.withhold and refuses_usage(status, answer):
            return Unknown.STREAM_OPTIONS
        if "max_tokens" in self.client and refuses_max_tokens(status, answer):
            return Unknown.MAX_TOKENS
        return Unknown.NONE

    def learned(self, refused: Unknown) -> Unknown:
        """What of `refused` is remembered for the upstream and model: not the `stream_options` when the client
        sent its own, which may be what was refused (a malformed member is the client's 400, not an upstream that
        knows no such parameter); the request still goes again as the client sent it."""
        return refused & ~Unknown.STREAM_OPTIONS if "stream_options" in self.client else refused

    def without(self, refused: Unknown) -> ChatAsk:
        """The request sent again after an upstream `refused` part of it."""
        ask = self
        if refused & Unknown.STREAM_OPTIONS:
            ask = ChatAsk(ask.client, ask.client_raw, False)
        if refused & Unknown.MAX_TOKENS and "max_tokens" in ask.client:
            ask = ChatAsk(with_completion_tokens(ask.client), b"", ask.withhold)
        return ask


async def open_chat(ctx: RequestContext, ask: ChatAsk, stream: bool) -> tuple[Opened, ChatAsk]:
    """The upstream's answer to a chat request passed through, and the request it answered. What it refused that
    the router can do without (`ChatAsk.refused`) is remembered for that upstream and model (`ChatAsk.learned`:
    its later requests go without it the first time), and the request goes again at once without it."""
    while True:
        body, raw, refit = ask.sent()
        opened = await dispatch(ctx, UpstreamRequest(pipeline.PATH, body, raw or None, ctx.upstream_headers, stream,
                                                       ctx.limits.max_upstream_event_bytes, refit=refit))
        refused = ask.refused(opened.reply.status, opened.first)
        if not refused:
            return opened, ask
        if learned := ask.learned(refused):
            opened.upstream.refused.learn(opened.target.model, learned)
        await opened.close()
        ask = ask.without(refused)


async def chat_repaired(request: web.Request, ctx: RequestContext, ask: ChatAsk,
                        stream: bool) -> web.StreamResponse:
    """Chat with tool-call repair: parsed, repaired documents encoded back to JSON or SSE. What an upstream refused
    that the router can do without is left out as `open_chat` does; `ask.withhold`: the usage chunk is not sent."""
    ex = ctx.exchange
    try:
        reply, ask = await _repaired_reply(ctx, ask, stream)
    except pipeline.UpstreamStatus as up:
        if isinstance(err := up.api_error(), ContextOverflowError):
            raise err from None
        ex.status = up.status
        return web.Response(status=up.status, body=up.body, headers={"Content-Type": up.content_type,
                                                                    "x-request-id": ex.request_id,
                                                                    "x-agentgate-provider": up.provider})
    withhold = ask.withhold
    headers = {"x-request-id": ex.request_id, **reply.headers}
    if reply.doc is not None:
        body_out = reply.raw if reply.raw is not None else jsoncodec.dumps(reply.doc)
        return web.Response(body=body_out, headers={**common.JSON_HEADERS, **headers})
    assert reply.chunks is not None
    encoder = relay.OpenAIChunksNoUsage() if withhold else relay.OpenAIChunks()
    return await relay.write_stream(request, ex, reply.chunks, encoder, headers)


def respond_whole(ex: Exchange, opened: Opened, rename_to: str | None,
                  customs: frozenset[str] = frozenset(), param: str = "messages") -> web.Response:
    """A non-stream answer (or an upstream error status), body forwarded byte for byte unless renamed or it holds
    calls to the custom tools `customs` in their function form (`engine_customs`)."""
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
            renamed = rename_to is not None and "model" in doc
            if renamed:
                doc["model"] = rename_to
            if (customs and whole_as_custom(doc, customs)) or renamed:
                try:  # (the upstream's answer, not the client's request, may nest too deep)
                    body = jsoncodec.dumps(doc)
                except (RecursionError, jsoncodec.TooDeep):
                    raise ApiError(502, f"Upstream {opened.upstream.name!r} returned an answer nested deeper than "
                                        "the router can send on.", "upstream_invalid_response") from None
    else:
        body = scrub(body, opened.upstream.config.api_key)
        if 400 <= status < 500 and (overflow := overflow_in(opened, body)) is not None:
            overflow.param = param  # (the request's field that holds the prompt)
            raise overflow
    ex.status = status
    ctype = opened.reply.headers.get("Content-Type", "application/json")
    return web.Response(status=status, body=body, headers={"Content-Type": ctype, "x-request-id": ex.request_id,
                                                           "x-agentgate-provider": opened.upstream.name})


def overflow_in(opened: Opened, body: bytes) -> ContextOverflowError | None:
    """The context overflow a 4xx answer says, in whatever words (see `router.overflow`), as OpenAI's: the openai
    SDK's `BadRequestError.code` names it only so (vLLM's is 400, LM Studio's body a string)."""
    up = opened.upstream
    err = pipeline.UpstreamStatus(opened.reply.status, body, "", up.name, relay.secrets_of(up)).api_error()
    return err if isinstance(err, ContextOverflowError) else None


def scrub(body: bytes, secret: str | None) -> bytes:
    if secret and secret.encode() in body:
        body = body.replace(secret.encode(), b"[redacted]")
    return body


async def _repaired_reply(ctx: RequestContext, ask: ChatAsk, stream: bool) -> tuple[pipeline.ChatReply, ChatAsk]:
    """The pipeline's reply, and the request it answered (see `open_chat`); raises `pipeline.UpstreamStatus`."""
    while True:
        body, raw, refit = ask.sent()
        try:
            return await pipeline.chat(ctx, body, stream=stream, raw=raw, refit=refit), ask
        except pipeline.UpstreamStatus as up:
            refused = ask.refused(up.status, up.body)
            if not refused:
                raise
            if learned := ask.learned(refused):
                up.learn(learned)
            ask = ask.without(refused)


async def pipe_stream(request: web.Request, ctx: RequestContext, opened: Opened,
                      rewriter: RenameRewriter | None, withhold_usage: bool = False,
                      customs: frozenset[str] = frozenset()) -> web.StreamResponse:
    """Forward events as they arrive (a partial event waits for its end), through the one upstream reader: after
    the first byte no retry is possible, and a failure or a stream cut short ends with a terminal error event.
    `withhold_usage`: the usage-only chunk is counted but not sent (the router asked for it, the client not);
    `customs`: calls to these custom tools come in their function form and go out as custom calls."""
    ex = ctx.exchange
    reader = relay.UpstreamReader(opened, ex, ctx.metrics, ctx.limits.max_upstream_event_bytes)
    reader.withhold_usage = withhold_usage
    headers = {"x-request-id": ex.request_id, "x-agentgate-provider": opened.upstream.name}
    gate = relay.gate_for(reader.redactor.secrets)
    if gate is not None or customs:  # a provider with a credential: its events are read, the secret looked for in
        # their text; calls to custom tools: read, and sent on as custom calls
        docs = _docs(reader, ctx.route.requested if rewriter is not None else None)
        items = _customs_mapped(docs, ChunkCalls(customs)) if customs else docs
        chunks = relay.OpenAIChunksNoUsage() if withhold_usage else relay.OpenAIChunks()
        return await relay.write_stream(request, ex, items if gate is None else relay.gated(items, gate), chunks,
                                        headers)
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


async def _customs_mapped(docs: AsyncGenerator[list[Any], None],
                          calls: ChunkCalls) -> AsyncGenerator[list[Any], None]:
    """The chunk documents with their calls to custom tools as custom calls (see `ChunkCalls`)."""
    async with aclosing(docs):
        async for batch in docs:
            out = calls.docs(batch)
            if out:
                yield out
    rest = calls.rest()
    if rest:
        yield rest
