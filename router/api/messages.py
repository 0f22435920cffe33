"""The Anthropic Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`, in front of every backend.

Requests are translated to the chat form at the edge and go through the shared pipeline (routing, retries,
fallbacks, tool-call repair, metrics, logs); answers are translated back. A model served by Anthropic providers
only gets the client's body as it came (`messages_native`). Errors on these routes are Anthropic-shaped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from ..config.model import ClientKey
from ..context import RequestContext
from ..dialects import anthropic_in as dialect
from ..errors import ApiError
from ..exchange import Exchange
from ..live_config import LiveConfig
from ..state import STATE
from ..upstream.anthropic import BETA_HEADER
from ..upstream.engine import CONTINUE_FINAL, EngineUpstream
from . import common
from .messages_native import NATIVE_KINDS, native_count, native_message, native_route, signed_history
from .translated import (
    OpenedFirst,
    chat_reply,
    fit_to_route,
    json_response,
    learn_tools,
    read_body,
    route_kinds,
    stream_translated,
)

COUNT_HEADER = "x-agentgate-token-count"  # "exact" (counted by our engine) or "estimate"


async def create_message(request: web.Request) -> web.StreamResponse:
    async def handle(rt: LiveConfig, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
        raw, body = await read_body(request, rt, ex)
        memos = request.app[STATE].messages_memos
        routed = _routed(request, rt, ex, key, body)
        if routed is not None and routed[1] == NATIVE_KINDS:
            # Anthropic providers only: the client's body as it came, their answer as it comes
            return await native_message(request, routed[0], signed_history(raw, body), body["model"],
                                        body.get("stream") is True,
                                        {"x-request-id": ex.request_id, "request-id": ex.request_id})
        req = dialect.parse_request(body, memos, interleaved=_interleaved(request))
        ctx, kinds = routed or _routed_for(request, rt, ex, key, req.model)  # (the body's model: found already)
        if req.prefill and not _continues_prefill(ctx):
            raise ApiError(400, PREFILL_REFUSED, "prefill_unsupported", param="messages")
        if req.learn_tools:
            learn_tools(request, raw, body.get("tools"))
        ex.dropped = req.dropped.kinds
        extra = dialect.thinking_fields(req.thinking, kinds, req.effort)
        chat = fit_to_route({**req.chat, **extra} if extra else req.chat, kinds)
        if req.prefill:
            chat.update(CONTINUE_FINAL)
        reply = await chat_reply(ctx, chat, req.stream, req.tools_json, memos.history)
        headers = {"x-request-id": ex.request_id, "request-id": ex.request_id, **reply.headers,
                   **req.dropped.header()}
        if reply.doc is not None:
            return json_response(dialect.to_message(reply.doc, req.model, req.stop_sequences,
                                                    req.estimate_input_tokens()), headers)
        translator = dialect.MessagesStream(req.model, req.stop_sequences, req.estimate_input_tokens(),
                                            rt.config.server.max_stream_repair_chars, ex.request_id)
        assert reply.chunks is not None
        opened = replace(reply, chunks=OpenedFirst(reply.chunks))  # message_start first (see `OpenedFirst`)
        return await stream_translated(request, ex, opened, translator, headers)

    return await common.handle_exchange(request, "messages", handle, "anthropic")


# A final assistant message asks Anthropic to continue it. Our MLX engine does, asked with vLLM's
# `continue_final_message`; an OpenAI-type API answers a new turn, and so may the server of an external engine
# command. A route that may reach one of those refuses it as Anthropic refuses it for its models that cannot continue
# one, rather than answer with what a prefill client would splice into nonsense.
PREFILL_REFUSED = ("This model does not support assistant message prefill: its backend starts a new answer instead of "
                   "continuing the last assistant message. The conversation must end with a user message.")
INTERLEAVED_THINKING = "interleaved-thinking-2025-05-14"  # the beta under which a thinking budget may pass max_tokens


def _continues_prefill(ctx: RequestContext) -> bool:
    """Whether every target of the request's route continues a final assistant message (see `PREFILL_REFUSED`)."""
    upstreams = ctx.runtime.upstreams
    targets = [upstreams.get(t.provider) for hop in ctx.route.hops for t in hop.targets]
    return bool(targets) and all(isinstance(u, EngineUpstream) and u.continues_final_message() for u in targets)


def _interleaved(request: web.Request) -> bool:
    """Whether the client's `anthropic-beta` (any line of it) names the interleaved-thinking beta."""
    return any(b.strip() == INTERLEAVED_THINKING for line in request.headers.getall(BETA_HEADER, ())
               for b in line.split(","))


def _routed(request: web.Request, rt: LiveConfig, ex: Exchange, key: ClientKey | None,
            body: dict[str, Any]) -> tuple[RequestContext, set[str]] | None:
    """The request's context for the body's model and the upstream kinds its route may reach (`route_kinds`);
    None without a model name (the translation's checks say what is wrong)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return None
    return _routed_for(request, rt, ex, key, model)


def _routed_for(request: web.Request, rt: LiveConfig, ex: Exchange, key: ClientKey | None,
                model: str) -> tuple[RequestContext, set[str]]:
    ctx = common.resolve(request, rt, ex, key, model)
    return ctx, route_kinds(ctx)


def _native(request: web.Request, rt: LiveConfig, ex: Exchange, key: ClientKey | None,
            body: dict[str, Any]) -> RequestContext | None:
    """The request's context when its model is served by Anthropic providers only (their API judges the body:
    the checks of the translation would refuse what only it can carry, such as server tools named in
    tool_choice or beta block types); None otherwise, or without a model name (the translation's checks say
    what is wrong)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return None
    ctx = common.resolve(request, rt, ex, key, model)
    return ctx if native_route(ctx) else None


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Exact when every target of the model is a local engine (a one-token generation reports the prompt's
    length, and warms the engine's prefix cache) or an Anthropic provider (its own count_tokens); otherwise the
    byte-level estimate, about four UTF-8 bytes per token of text, tool definitions and tool calls, plus 1600 per
    image."""
    async def handle(rt: LiveConfig, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
        raw, body = await common.read_json(request, rt)
        native = _native(request, rt, ex, key, body)
        if native is not None:  # Anthropic's own count (or its verdict on the body)
            return await native_count(request, native,
                                      {k: v for k, v in signed_history(raw, body).items() if k != "stream"},
                                      {"x-request-id": ex.request_id, "request-id": ex.request_id,
                                       COUNT_HEADER: "exact"})
        req = dialect.parse_request({k: v for k, v in body.items() if k != "stream"}, request.app[STATE].messages_memos,
                                    count_only=True)
        if req.learn_tools:
            learn_tools(request, raw, body.get("tools"))
        ctx = common.resolve(request, rt, ex, key, req.model)
        route = ctx.route
        count, how = req.estimate_input_tokens(), "estimate"
        first = route.hops[0].targets if route.hops else ()
        if first and all(rt.upstreams[t.provider].kind == "engine" for t in first):
            chat = {k: v for k, v in req.chat.items() if k not in ("tool_choice", "stop")}
            chat.update(dialect.thinking_fields(req.thinking, route_kinds(ctx), req.effort))
            chat = fit_to_route(chat, route_kinds(ctx))
            if req.prefill and _continues_prefill(ctx):  # counted as it is rendered when it is answered
                chat.update(CONTINUE_FINAL)
            chat["max_tokens"] = 1
            try:
                reply = await chat_reply(ctx, chat, False)
                usage = (reply.doc or {}).get("usage")
                prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
                if isinstance(prompt, int):
                    count, how = prompt, "exact"
            except ApiError as err:
                ex.error = err.code  # the estimate stands
        ex.status = 200
        return json_response({"input_tokens": count}, {"x-request-id": ex.request_id, "request-id": ex.request_id,
                                                       COUNT_HEADER: how})

    return await common.handle_exchange(request, "count_tokens", handle, "anthropic")
