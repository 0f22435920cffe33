"""What the routes that translate their dialect to the chat form share (Messages, Responses): fitting the chat
body to the backends a route may reach, the pipeline's reply, and writing a translated answer."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from .. import jsoncodec, pipeline, relay
from ..chat_types import StreamChunk
from ..context import RequestContext
from ..dialects.common import HistoryMemo, ToolsJson, chat_bytes, without_images
from ..errors import ApiError
from ..exchange import Exchange
from ..live_config import LiveConfig
from ..state import STATE
from ..toolcache import tools_bytes
from ..upstream.base import Unknown, UpstreamRequest
from . import common
from .common import JSON_HEADERS
from .openai_routes import refuses_max_tokens, refuses_usage, with_completion_tokens


class Translator(Protocol):
    def feed(self, doc: dict[str, Any] | StreamChunk) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    def error(self, err: ApiError) -> list[bytes]: ...


def route_kinds(ctx: RequestContext) -> set[str]:
    """The upstream kinds ("openai", "anthropic", "engine") the request's route may reach."""
    upstreams = ctx.runtime.upstreams
    return {upstreams[t.provider].kind for hop in ctx.route.hops for t in hop.targets if t.provider in upstreams}


def fit_to_route(chat: dict[str, Any], kinds: set[str]) -> dict[str, Any]:
    """The chat body as the backends on the route take it: images become text placeholders when a local engine
    may answer (they read text only), and `top_k` (not an OpenAI parameter) is not sent to OpenAI-type
    providers."""
    out = dict(chat)
    if "engine" in kinds:
        out["messages"], _ = without_images(out["messages"])
    if "openai" in kinds:
        out.pop("top_k", None)
    return out


async def read_body(request: web.Request, rt: LiveConfig, ex: Exchange) -> tuple[bytes, dict[str, Any]]:
    """The JSON body and its bytes, noted in the record before anything can refuse it."""
    raw, body = await common.read_json(request, rt)
    common.note_request(ex, body)
    return raw, body


def learn_tools(request: web.Request, raw: bytes, tools: object) -> None:
    """The client's tools list (it passed its dialect's checks) remembered by its bytes in the router's
    `KnownTools`: the next request that sends them is parsed without them and carries this very list, whose
    translation the dialect then finds by identity. The cache is the chat route's, which skips its own check of
    a list it hands out, so only a list that check would pass is learned; the index learned with it is this
    list's own (what the chat route would build for it)."""
    if not isinstance(tools, list) or not tools or not all(_chat_checkable(t) for t in tools):
        return
    cache = request.app[STATE].tool_indexes
    if not cache.known.holds(tools):
        cache.known.learn(raw, tools, cache.index(tools, tools_bytes(tools)))


def _chat_checkable(tool: object) -> bool:
    """Whether `check_request` passes this tool (see `dialects.openai_request`)."""
    if not isinstance(tool, dict):
        return False
    fn = tool.get("function")
    return fn is None or (isinstance(fn, dict) and isinstance(fn.get("name"), str))


def json_response(doc: dict[str, Any], headers: dict[str, str], data: bytes = b"") -> web.Response:
    """`doc` as compact UTF-8 JSON (`jsoncodec`: orjson where it gives the standard library's text); `data` is that
    encoding when the caller made it."""
    return web.Response(body=data or jsoncodec.dumps(doc), headers={**JSON_HEADERS, **headers})


async def stream_translated(request: web.Request, ex: Exchange, reply: pipeline.ChatReply, translator: Translator,
                            headers: dict[str, str],
                            before_finish: Callable[[], Awaitable[None]] | None = None,
                            keepalive: bytes = relay.MESSAGES_PING) -> web.StreamResponse:
    """The pipeline's stream (lists of chunk documents and `StreamChunk`s, one list per upstream read) through a
    dialect translator onto the wire, by the one stream writer (see `relay`)."""
    assert reply.chunks is not None
    return await relay.write_stream(request, ex, reply.chunks, relay.Translated(translator, keepalive), headers,
                                    before_finish)


class OpenedFirst:
    """A translated stream's items that open the stream at once when its first item has not come yet: an empty
    chunk document first, which the translator answers with its opening events alone. The stream starts before its
    first chunk past the keepalive interval (see `pipeline`), and its first keepalive goes out at once: a Messages
    stream's is an `event: ping`, which must follow `message_start` (Anthropic's streams open with it). A first item
    already made goes out as it did, in the same write as the opening."""

    __slots__ = ("_began", "_items", "_next")

    def __init__(self, items: AsyncIterator[pipeline.Items]) -> None:
        self._items = items
        self._next: Awaitable[pipeline.Items] | None = None  # the first item, awaited after the opening
        self._began = False

    def __aiter__(self) -> OpenedFirst:
        return self

    def __anext__(self) -> Awaitable[pipeline.Items]:
        pending = self._next
        if pending is not None:
            self._next = None
            return pending
        if self._began:
            return self._items.__anext__()
        self._began = True
        first = self._items.__anext__()
        if isinstance(first, asyncio.Future) and first.done():  # made already (the usual)
            return first
        self._next = first
        return _opening()

    async def aclose(self) -> None:
        pending, self._next = self._next, None
        if inspect.iscoroutine(pending):  # never awaited: closed (the items' own close stops what it waits for)
            pending.close()
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()


async def _opening() -> pipeline.Items:
    return [{}]


async def chat_reply(ctx: RequestContext, chat: dict[str, Any], stream: bool, tools: ToolsJson | None = None,
                     history: HistoryMemo | None = None) -> pipeline.ChatReply:
    """The pipeline's reply; an upstream's own error status becomes the route's error. With `tools` (the chat
    tools list and its bytes, kept since a client first sent it) and `history` (the dialect's translated messages
    with their bytes) the chat body goes to the pipeline as bytes too, made with those kept bytes: sent as they
    are, and the list is known to the tool index cache by its bytes. What an upstream refuses as a field it does
    not know is taken away (see below)."""
    # An upstream that knows no `stream_options` (the usage the router asks for) is asked again without, as the chat
    # route does (usage then comes where the upstream puts it, if anywhere). The reasoning the client sent back (see
    # `dialects.anthropic_in`, `dialects.responses.reasoning_text`) is an assistant message's `reasoning_content`,
    # which some upstreams that never made it refuse as a field they do not know (Mistral's API answers 422
    # extra_forbidden after a switch from a reasoning model): asked again without it. Each is taken away once, and
    # what was taken away stays away (an upstream may refuse both, one at a time); the upstream that refused it is
    # sent it no more, for that model (`Refusals`): its later requests go without it the first time. So is the
    # limit, `max_tokens`, which OpenAI's reasoning models (o1, o3, o4-mini, gpt-5) refuse: it goes as
    # `max_completion_tokens` to an upstream that asked for that name (not to every OpenAI-type provider: some
    # compatible servers know no such field, and would run with no limit).
    while True:
        try:
            return await pipeline.chat(ctx, chat, stream=stream, raw=chat_bytes(chat, tools, history),
                                       refit=WithoutRefused(tools, history))
        except pipeline.UpstreamStatus as up:
            if stream and "stream_options" in chat and refuses_usage(up.status, up.body):
                up.learn(Unknown.STREAM_OPTIONS)
                chat = {k: v for k, v in chat.items() if k != "stream_options"}
            elif _refused_reasoning(up, chat):
                up.learn(Unknown.REASONING)
                chat, history = _without_reasoning(chat), None  # (the kept translation holds the field)
            elif "max_tokens" in chat and refuses_max_tokens(up.status, up.body):
                up.learn(Unknown.MAX_TOKENS)
                chat = with_completion_tokens(chat)
            else:
                raise up.api_error() from None


@dataclass(frozen=True, slots=True, eq=False)
class WithoutRefused:
    """A translated chat request as it goes to an upstream that refused some of what the router put in it: no
    `stream_options`, no `reasoning_content` in the history, the limit as `max_completion_tokens`, its bytes made
    again with the kept ones (`tools`, and `history` where the messages stay as translated)."""

    tools: ToolsJson | None
    history: HistoryMemo | None

    def __call__(self, request: UpstreamRequest, unknown: Unknown) -> UpstreamRequest:
        chat, history = request.body, self.history
        if unknown & Unknown.STREAM_OPTIONS and "stream_options" in chat:
            chat = {k: v for k, v in chat.items() if k != "stream_options"}
        if unknown & Unknown.REASONING and _holds_reasoning(chat):
            chat, history = _without_reasoning(chat), None
        if unknown & Unknown.MAX_TOKENS and "max_tokens" in chat:
            chat = with_completion_tokens(chat)
        if chat is request.body:
            return request
        raw = chat_bytes(chat, self.tools, history) if request.raw is not None else b""
        return request._replace(body=chat, raw=raw or None)


_UNKNOWN_FIELD = re.compile(rb"(?i)extra_forbidden|not permitted|unrecognized|unknown (?:name|field)|unexpected|"
                            rb"not allowed")


def _refused_reasoning(up: pipeline.UpstreamStatus, chat: dict[str, Any]) -> bool:
    """Whether the upstream refused the history's `reasoning_content` as a field it does not know."""
    return up.status in (400, 422) and b"reasoning_content" in up.body and _UNKNOWN_FIELD.search(up.body) is not None \
        and _holds_reasoning(chat)


def _holds_reasoning(chat: dict[str, Any]) -> bool:
    return any("reasoning_content" in m for m in chat["messages"])


def _without_reasoning(chat: dict[str, Any]) -> dict[str, Any]:
    return {**chat, "messages": [{k: v for k, v in m.items() if k != "reasoning_content"}
                                 if "reasoning_content" in m else m for m in chat["messages"]]}
