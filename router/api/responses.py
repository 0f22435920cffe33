"""The OpenAI Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}` (and its `cancel`, a 400
for any response made here: none is a background one), in front of every backend.

Requests are translated to the chat form and go through the shared pipeline; stored responses (`store`, on by
default) keep their conversation in the response store so `previous_response_id` works with stateless backends.
Errors are OpenAI-shaped.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .. import relay
from ..config.model import ClientKey
from ..dialects import responses as dialect
from ..dialects.common import MAX_ID_CHARS, estimate_tokens, new_id, spaced_json
from ..errors import ApiError
from ..exchange import Exchange
from ..live_config import LiveConfig
from ..overflow import ContextOverflowError
from ..pipeline import ChatReply, Items
from ..state import STATE
from ..store import (
    ConversationTooLarge,
    DuplicateItem,
    ItemOfFailedResponse,
    ResponseStore,
    RowTooLarge,
    StoredResponse,
)
from . import common
from .translated import chat_reply, fit_to_route, json_response, learn_tools, read_body, route_kinds, stream_translated

log = logging.getLogger("agentgate")


MAX_PENDING_SAVES = 64  # interrupted streams' saves in flight at once; past it, one more is not stored (logged)
MAX_LIVE = 1024  # stored streams readable while they run (`in_progress`); past it, one more is read once stored


@dataclass(frozen=True)
class Live:
    """A stream of a stored Response still running: whose it is, its translator, its conversation before the
    reply (its input items)."""

    owner: str | None
    stream: dialect.ResponsesStream
    conversation: dialect.Conversation


@dataclass
class StoreHolder:
    """The store, opened on first use (from the environment, see `router.store`) and closed at shutdown, and the
    saves that outlive their request (a stream whose client left), awaited before it closes."""

    store: ResponseStore | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # response id: its save
    live: dict[str, Live] = field(default_factory=dict)  # response id: its stream, while it runs
    deleted: set[str] = field(default_factory=set)  # of `live`, those deleted while they run: never stored

    async def saved(self, resp_id: str | None) -> None:
        """Once the save of `resp_id` in flight, if any, is done: a request naming it finds it stored (and a
        DELETE is not undone by it)."""
        task = self.pending.get(resp_id) if resp_id else None
        if task is not None:
            await asyncio.wait({task})

    async def get(self) -> ResponseStore:
        if self.store is None:
            async with self.lock:
                if self.store is None:
                    self.store = await asyncio.to_thread(ResponseStore.from_env)
        return self.store


RESPONSE_STORE = web.AppKey("agentgate_response_store", StoreHolder)


async def close_store(app: web.Application) -> AsyncIterator[None]:
    yield
    holder = app[RESPONSE_STORE]
    if holder.pending:
        await asyncio.gather(*holder.pending.values(), return_exceptions=True)
    if holder.store is not None:
        holder.store.close()
        holder.store = None


def failed_at_once(err: ApiError) -> ChatReply:
    """A stream whose first read fails with `err`: the Response is created, then fails with it."""

    async def chunks() -> AsyncIterator[Items]:
        raise err
        yield []  # (a generator)

    return ChatReply(chunks=chunks(), headers=dict(err.headers))


async def _save(request: web.Request, resp_id: str, owner: str | None, doc: dict[str, Any],
                conversation: dialect.Conversation, items: list[dict[str, Any]]) -> None:
    """The answer stored for `previous_response_id`; whatever fails here, the answer still goes out (only
    continuing it will fail), so a stream's last events are never lost to it."""
    holder = request.app[RESPONSE_STORE]
    if resp_id in holder.deleted:  # (deleted while it ran)
        return
    try:
        item = _stored(resp_id, owner, doc, conversation, items)
    except ApiError as exc:  # an output no later request could send back (a call without a name)
        log.warning("response %s not stored: %s", resp_id, exc.message)
        return
    try:
        store = await holder.get()
        await store.put(item)
        if resp_id in holder.deleted:  # (deleted while it was being stored)
            await store.delete(resp_id, owner)
    except (OSError, sqlite3.Error, RowTooLarge) as exc:
        log.warning("could not store response %s: %s", item.id, exc)


def _short_id(resp_id: str) -> str:
    """An id as an error message shows it: never more than 64 characters of what the client sent."""
    return repr(resp_id) if len(resp_id) <= 64 else f"{resp_id[:64]!r}… ({len(resp_id)} characters)"


async def _owner(request: web.Request, key: ClientKey | None) -> tuple[ResponseStore, str | None]:
    """The store, and the identity `key`'s responses are stored under (a keyed digest of the key, never its name:
    a renamed or reordered key keeps its own conversations and never receives another's)."""
    store = await request.app[RESPONSE_STORE].get()
    return store, store.owner_of(key.key if key else None)


async def _stored_get(store: ResponseStore, resp_id: str, owner: str | None,
                      param: str | None = "previous_response_id") -> StoredResponse | None:
    """The stored response `resp_id` of `owner`; one too large to load is a 400 naming `param` (the request field
    that named it, told what to send instead; None where the id came in the path: a read, which cannot be
    served)."""
    try:
        return await store.get(resp_id, owner)
    except ConversationTooLarge as exc:
        advice = "Send the conversation as input instead." if param else "It cannot be read; delete it if unneeded."
        raise ApiError(400, f"{exc} {advice}", "previous_response_too_large", param=param) from None
    except (OSError, sqlite3.Error, ValueError) as exc:
        log.warning("response store lookup of %s failed: %s", resp_id[:64], exc)
        raise ApiError(503, "The response store is unavailable; the previous response cannot be read.",
                       "store_unavailable") from None


async def _history(request: web.Request, store: ResponseStore, previous_id: str | None,
                   owner: str | None) -> dialect.Conversation:
    """The conversation `previous_response_id` continues (none without one); one not stored for `owner`, still
    streaming, or stored `failed` (its answer never ended: nothing to continue from), is a 400 naming it."""
    if not previous_id:
        return dialect.Conversation([])
    await request.app[RESPONSE_STORE].saved(previous_id)
    previous = await _stored_get(store, previous_id, owner)
    if previous is None and _running(request, previous_id, owner) is not None:
        raise ApiError(400, f"Previous response with id {_short_id(previous_id)} is still in progress; continue it "
                       "once it has completed.", "previous_response_in_progress", param="previous_response_id")
    if previous is None:
        raise ApiError(400, f"Previous response with id {_short_id(previous_id)} not found.",
                       "previous_response_not_found", param="previous_response_id")
    if previous.response.get("status") == "failed":
        raise ApiError(400, f"Previous response with id {_short_id(previous_id)} failed; it cannot be continued. "
                       "Continue from the response before it, or send the conversation as input.",
                       "previous_response_failed", param="previous_response_id")
    return dialect.Conversation(previous.messages, previous.summarized)


async def _referenced(request: web.Request, body: dict[str, Any], key: ClientKey | None) -> dict[str, Any]:
    """`body` with the `item_reference` items of its `input` replaced by the output or input items they name, of
    the responses stored for `key` (`body` itself when it has none)."""
    ids = dialect.referenced_ids(body)
    if not ids:
        return body
    store, owner = await _owner(request, key)
    previous = body.get("previous_response_id")
    continued = previous if isinstance(previous, str) and 0 < len(previous) <= MAX_ID_CHARS else None
    await request.app[RESPONSE_STORE].saved(continued)
    try:
        found = await store.items(ids, owner, continued)
    except DuplicateItem as exc:  # (as OpenAI answers it)
        raise dialect.duplicate_item(exc.item_id) from None
    except ConversationTooLarge as exc:
        raise ApiError(400, str(exc), "referenced_items_too_large", param="input") from None
    except ItemOfFailedResponse as exc:  # (refused as a `previous_response_id` naming its response is)
        raise ApiError(400, f"Item with id {_short_id(exc.item_id)} is output of response {_short_id(exc.resp_id)}, "
                       "which failed; it cannot be referenced. Continue from the response before it, or send "
                       "the item itself as input.", "item_of_failed_response", param="input") from None
    except (OSError, sqlite3.Error, ValueError) as exc:
        log.warning("response store lookup of %d referenced items failed: %s", len(ids), exc)
        raise ApiError(503, "The response store is unavailable; the referenced items cannot be read.",
                       "store_unavailable") from None
    try:
        return dialect.with_references(body, found)
    except dialect.ItemNotFound as exc:
        running = _running_with_item(request, exc.ref, owner)
        if running is None:
            raise
        raise ApiError(400, f"Item with id {_short_id(exc.ref)} is an item of response {_short_id(running)}, which "
                       "is still in progress; reference it once that response has completed.", "item_in_progress",
                       param="input") from None


def _running_with_item(request: web.Request, item_id: str, owner: str | None) -> str | None:
    """The id of `owner`'s stored Response whose stream runs and holds `item_id` among its output items so far or
    its input items (not stored until it ends: a GET lists them); None when none does. Looked at only for a
    reference found nowhere else."""
    holder = request.app[RESPONSE_STORE]
    for resp_id in list(holder.live):
        live = _running(request, resp_id, owner)
        if live is not None and (any(it.get("id") == item_id for it in live.stream.items) or any(
                it["id"] == item_id for it in live.conversation.input_items(resp_id))):
            return resp_id
    return None


async def create_response(request: web.Request) -> web.StreamResponse:
    async def handle(rt: LiveConfig, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
        raw, body = await read_body(request, rt, ex)
        memos = request.app[STATE].responses_memos
        req = dialect.parse_request(await _referenced(request, body, key), memos)
        if req.learn_tools:
            learn_tools(request, raw, body.get("tools"))
        ex.dropped = req.dropped.kinds
        ctx = common.resolve(request, rt, ex, key, req.model)
        store, owner = await _owner(request, key)
        history = await _history(request, store, req.previous_response_id, owner)
        conversation = history.then(req.input_messages, req.input_summarized)
        resp_id = new_id("resp_")
        chat = fit_to_route(dialect.build_chat(req, history.messages), route_kinds(ctx))
        try:
            reply = await chat_reply(ctx, chat, req.stream, req.tools_json, memos.history)
        except ContextOverflowError as err:
            if not req.stream:
                raise err.for_responses() from None
            reply = failed_at_once(err.for_responses())  # as OpenAI streams it: `response.failed` (Codex reads
            # its `error.code`; a 400 it takes for any other refusal, and does not compact)
        except ApiError as err:  # (an upstream's refusal of the limit names the client's field)
            raise dialect.limit_named(err, req) from None
        headers = {"x-request-id": ex.request_id, **reply.headers, **req.dropped.header()}
        if reply.doc is not None:
            items, finish = dialect.output_items(reply.doc, req.client_tools, logprobs=req.logprobs,
                                                   seal=req.sealed_reasoning, summary=req.summarize)
            status, incomplete = dialect.status_of(finish)
            if status == "incomplete" and items:  # the item the limit cut
                items[-1]["status"] = "incomplete"
            usage = dialect.usage_of(reply.doc.get("usage"), items)
            doc = dialect.response_object(req, resp_id, int(time.time()), status=status, output=items, usage=usage,
                                          incomplete=incomplete)
            if req.store:
                await _save(request, resp_id, owner, doc, conversation, items)
            return json_response(doc, headers, dialect.response_json(req, doc))
        keep = (lambda doc: _keep_later(request, resp_id, owner, doc, conversation)) if req.store else None
        translator = _KeptStream(req, resp_id, rt.config.server.max_stream_repair_chars, keep)

        async def before_finish() -> None:  # (a failed one too: OpenAI keeps it, `failed` with its `error`)
            final = translator.response
            if not req.store or final is None:
                return
            if final["status"] == "failed":  # (its save began when it failed: see `_KeptStream`)
                await request.app[RESPONSE_STORE].saved(resp_id)
            else:
                await _save(request, resp_id, owner, final, conversation, translator.items)

        if req.store:
            _go_live(request.app[RESPONSE_STORE], Live(owner, translator, conversation))
        try:
            return await stream_translated(request, ex, reply, translator, headers, before_finish,
                                          relay.OPENAI_KEEPALIVE)
        finally:
            if req.store:  # (a stream that ended is stored by `before_finish`)
                _keep_interrupted(request, translator, owner, conversation)
                _ended(request.app[RESPONSE_STORE], resp_id)

    return await common.handle_exchange(request, "responses", handle)


class _KeptStream(dialect.ResponsesStream):
    """`ResponsesStream` whose failed Response is handed to `keep` (a save in its own task) once it is known,
    before its last events go out: a stream an error of the router's own ended (a 500) gets no `before_finish`,
    and is stored `failed` as one an upstream's error ended is."""

    def __init__(self, req: dialect.ResponsesRequest, resp_id: str, max_chars: int,
                 keep: Callable[[dict[str, Any]], None] | None) -> None:
        super().__init__(req, resp_id, max_chars)
        self.keep = keep

    def error(self, err: ApiError) -> list[bytes]:
        out = super().error(err)
        if self.keep is not None and self.response is not None:
            self.keep(self.response)
        return out


def _go_live(holder: StoreHolder, live: Live) -> None:
    """`live` readable while it runs (bounded: past `MAX_LIVE` streams, one more is read once stored)."""
    if len(holder.live) < MAX_LIVE:
        holder.live[live.stream.id] = live
    else:
        log.info("response %s readable once stored: %d stored responses are streaming", live.stream.id,
                 len(holder.live))


def _ended(holder: StoreHolder, resp_id: str) -> None:
    """A stream of a stored Response ended (its save, if any, done or scheduled): no longer read while it runs."""
    holder.live.pop(resp_id, None)
    holder.deleted.discard(resp_id)


def _running(request: web.Request, resp_id: str, owner: str | None) -> Live | None:
    """The stream of `owner`'s stored Response `resp_id` while it runs (None: none, another's, or deleted)."""
    holder = request.app[RESPONSE_STORE]
    live = holder.live.get(resp_id)
    return live if live is not None and live.owner == owner and resp_id not in holder.deleted else None


def _in_progress(live: Live) -> dict[str, Any]:
    """A running stream's Response as OpenAI answers a read of it: `in_progress`, its output items done so far."""
    stream = live.stream
    done = [item for item in stream.items if item.get("status") != "in_progress"]
    return dialect.response_object(stream.req, stream.id, stream.created_at, status="in_progress", output=done,
                                   usage=None)


def _keep_interrupted(request: web.Request, translator: dialect.ResponsesStream, owner: str | None,
                      conversation: dialect.Conversation) -> None:
    """A stream whose client left before it ended (its handler may be cancelled: the save runs on in its own
    task), stored as far as it went, `incomplete`, so that its id, which the client has, can be read and
    continued (see `ResponsesStream.interrupted`)."""
    doc = translator.interrupted()
    if doc is not None:
        _keep_later(request, translator.id, owner, doc, conversation)


def _keep_later(request: web.Request, resp_id: str, owner: str | None, doc: dict[str, Any],
                conversation: dialect.Conversation) -> None:
    """Store `doc` in a task of its own, pending (a request naming its id waits for it) until done."""
    holder = request.app[RESPONSE_STORE]
    if resp_id in holder.deleted:  # (deleted while it ran)
        return
    if len(holder.pending) >= MAX_PENDING_SAVES:
        log.warning("response %s not stored: %d responses are being stored", resp_id, len(holder.pending))
        return
    task = asyncio.get_running_loop().create_task(_save(request, resp_id, owner, doc, conversation, doc["output"]))
    holder.pending[resp_id] = task
    task.add_done_callback(lambda done: _saved(holder, resp_id, done))


def _saved(holder: StoreHolder, resp_id: str, task: asyncio.Task[None]) -> None:
    """A save that outlived its request ended: no longer pending; one that failed in a way `_save` does not expect
    (a bug) is logged, never dropped unseen (the shutdown's gather would: its exceptions are returned, not
    raised). The log names the response and the error, never the client's key."""
    holder.pending.pop(resp_id, None)
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        log.error("response %s not stored: unexpected %s: %s", resp_id, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__))


def _stored(resp_id: str, owner: str | None, doc: dict[str, Any], conversation: dialect.Conversation,
            items: list[dict[str, Any]]) -> StoredResponse:
    """The stored form of Response `doc`: its conversation with its reply (output `items`) after it."""
    whole = conversation.replied(items)
    return StoredResponse(id=resp_id, owner=owner, response=doc, messages=whole.messages,
                          inputs=conversation.input_items(resp_id), summarized=whole.summarized)


StoredHandler = Callable[[web.Request, ResponseStore, str, str | None], Awaitable[dict[str, Any]]]


def _stored_route(endpoint: str) -> Callable[[StoredHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A route on one stored response (`/v1/responses/{id}...`) in the frame of every API route (the key checked,
    the OpenAI-shaped error, the request's access-log line and metrics, under `endpoint`), the store opened."""
    def wrap(handler: StoredHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            async def handle(rt: LiveConfig, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
                store, owner = await _owner(request, key)
                await request.app[RESPONSE_STORE].saved(request.match_info["id"])
                doc = await handler(request, store, request.match_info["id"], owner)
                ex.status = 200
                return json_response(doc, {"x-request-id": ex.request_id})

            return await common.handle_exchange(request, endpoint, handle)

        return route

    return wrap


@_stored_route("responses_get")
async def get_response(request: web.Request, store: ResponseStore, resp_id: str, owner: str | None) -> dict[str, Any]:
    """The stored Response; one whose stream runs, `in_progress` (see `_in_progress`)."""
    doc = await _response_of(request, store, resp_id, owner)
    if doc is None:
        raise dialect.response_not_found(_short_id(resp_id))
    if _streamed(request.query.get("stream")):
        raise ApiError(400, f"The response {_short_id(resp_id)} cannot be streamed: only a background response "
                       "is streamed again, and background responses are not supported here. Retrieve it without "
                       "'stream'.", "invalid_value", param="stream")
    return doc


async def _response_of(request: web.Request, store: ResponseStore, resp_id: str,
                       owner: str | None) -> dict[str, Any] | None:
    """`owner`'s Response `resp_id`: `in_progress` while its stream runs, then as stored (its final Response
    while its save is under way); None when there is none."""
    live = _running(request, resp_id, owner)
    if live is not None and live.stream.response is None:
        return _in_progress(live)
    item = await _stored_get(store, resp_id, owner, param=None)
    if item is not None:
        return item.response
    return live.stream.response if live is not None else None


def _streamed(raw: str | None) -> bool:
    """A read's `stream`: "true" or "false" (the default, when absent), as OpenAI parses it; else a 400."""
    if raw is None or raw == "false":
        return False
    if raw != "true":
        raise ApiError(400, f"Invalid value: {raw[:20]!r}. 'stream' must be 'true' or 'false'.", "invalid_type",
                       param="stream")
    return True


@_stored_route("responses_delete")
async def delete_response(request: web.Request, store: ResponseStore, resp_id: str,
                          owner: str | None) -> dict[str, Any]:
    """The stored Response deleted; one whose stream runs, never stored (its stream goes on)."""
    running = _running(request, resp_id, owner) is not None
    if running:
        request.app[RESPONSE_STORE].deleted.add(resp_id)
    try:
        deleted = await store.delete(resp_id, owner) or running
    except (OSError, sqlite3.Error) as exc:
        log.warning("response store delete of %s failed: %s", resp_id[:64], exc)
        raise ApiError(503, "The response store is unavailable.", "store_unavailable") from None
    if not deleted:
        raise dialect.response_not_found(_short_id(resp_id))
    return {"id": resp_id, "object": "response", "deleted": True}


@_stored_route("responses_cancel")
async def cancel_response(request: web.Request, store: ResponseStore, resp_id: str,
                          owner: str | None) -> dict[str, Any]:
    """OpenAI cancels background responses only, and none are made here: a stored Response, or one whose stream
    runs (which goes on to its end), is OpenAI's 400 for a synchronous one; another id, the 404 of a read."""
    if await _response_of(request, store, resp_id, owner) is None:
        raise dialect.response_not_found(_short_id(resp_id))
    raise ApiError(400, "Cannot cancel a synchronous response.", "invalid_request")


@_stored_route("responses_input_items")
async def list_input_items(request: web.Request, store: ResponseStore, resp_id: str,
                           owner: str | None) -> dict[str, Any]:
    """The stored response's input (its conversation before the reply), newest first unless `order=asc`; one
    whose stream runs, its input as it will be stored."""
    items = await _input_items(request, store, resp_id, owner)
    if _order(request.query.get("order")) == "desc":
        items.reverse()
    ids = [i["id"] for i in items]
    after, before = request.query.get("after"), request.query.get("before")
    if before is not None:  # the items before that one, in the order asked for
        items = items[:_cursor_at(ids, before, "before")]
    if after is not None:  # a page's last id: the next page
        items = items[_cursor_at(ids, after, "after") + 1:]
    n = _limit(request.query.get("limit"))
    # a page's first id alone: the previous page, the `n` items right before it (with `after` too: from `after` on)
    page = items[-n:] if before is not None and after is None else items[:n]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > n}


async def _input_items(request: web.Request, store: ResponseStore, resp_id: str,
                      owner: str | None) -> list[dict[str, Any]]:
    """The input items of `owner`'s stored Response `resp_id`, or of its stream while it runs; else a 404."""
    item = await _stored_get(store, resp_id, owner, param=None)
    if item is not None:
        replied = dialect.assistant_message(item.response.get("output") or []) is not None
        return dialect.input_items_of(item.messages[:-1] if replied else item.messages, resp_id, item.summarized)
    live = _running(request, resp_id, owner)
    if live is None:
        raise dialect.response_not_found(_short_id(resp_id))
    return live.conversation.input_items(resp_id)


def _cursor_at(ids: list[str], cursor: str, param: str) -> int:
    """Where a page's cursor is among the listed ids; one that names none of them is a 404 naming `param`, as
    OpenAI answers a list cursor naming no object (an empty page would read as the list's end)."""
    try:
        return ids.index(cursor)
    except ValueError:
        raise ApiError(404, f"No input item of this response has id {_short_id(cursor)}.", "item_not_found",
                       type="invalid_request_error", param=param) from None


def _order(raw: str | None) -> str:
    """A page's `order`: "asc" or "desc" (the default, when absent); anything else is a 400 naming it."""
    if raw is None:
        return "desc"
    if raw not in ("asc", "desc"):
        raise ApiError(400, f"Invalid value: {raw[:20]!r}. Supported values are: 'asc' and 'desc'.",
                       "invalid_value", param="order")
    return raw


def _limit(raw: str | None) -> int:
    """A page's `limit`: 1 to 100 in ASCII digits (20 when absent); anything else is a 400 (str.isdigit accepts
    '²' and '①', which int() refuses)."""
    if raw is None:
        return 20
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= 100):
        raise ApiError(400, f"'limit' must be an integer from 1 to 100, got {raw[:20]!r}.", "invalid_value",
                       param="limit")
    return int(raw)


async def count_input_tokens(request: web.Request) -> web.StreamResponse:
    """`POST /v1/responses/input_tokens`: the byte-level estimate (about four UTF-8 bytes per token) of what the
    model would read: instructions, stored history, input and tool definitions."""
    async def handle(rt: LiveConfig, ex: Exchange, key: ClientKey | None) -> web.StreamResponse:
        body = await common.read_noted(request, rt, ex)
        memos = request.app[STATE].responses_memos
        body = await _referenced(request, {k: v for k, v in body.items() if k != "stream"}, key)
        req = dialect.parse_request(body, memos)
        common.resolve(request, rt, ex, key, req.model)
        history: list[dict[str, Any]] = []
        if req.previous_response_id:  # as `POST /v1/responses` answers it: counting without it would mislead
            store, owner = await _owner(request, key)
            history = (await _history(request, store, req.previous_response_id, owner)).messages
        chat = dialect.build_chat(req, history)
        size = len(spaced_json([chat["messages"], chat.get("tools")]).encode())
        ex.status = 200
        return json_response({"object": "response.input_tokens", "input_tokens": estimate_tokens(size)},
                             {"x-request-id": ex.request_id})

    return await common.handle_exchange(request, "input_tokens", handle)
