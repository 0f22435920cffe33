"""What every API route does: request id, auth, body limits, JSON decoding, and the per-request record."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from engines.wire import json_type

from .. import auth, jsoncodec
from ..backpressure import WriteWatch
from ..config.model import ClientKey
from ..context import RequestContext, upstream_headers
from ..dialects.common import UncodedError
from ..drain import IN_FLIGHT, uncancel
from ..errors import ApiError
from ..exchange import Exchange
from ..live_config import LiveConfig
from ..redact import scrub_text
from ..relay import ClientGone
from ..state import STATE
from ..upstream.base import with_timeout

log = logging.getLogger("agentgate")
JSON_HEADERS = {"Content-Type": "application/json"}
Handler = Callable[[LiveConfig, Exchange, ClientKey | None], Awaitable[web.StreamResponse]]


async def handle_exchange(request: web.Request, endpoint: str, handler: Handler,
                          dialect: str = "openai") -> web.StreamResponse:
    """The frame of every proxying route: one `Exchange` record, the client key checked, an `ApiError` turned
    into the dialect's error shape, a client disconnect marked, and the record written once at the end. The
    runtime read here is the one the whole request uses, whatever a reload does meanwhile."""
    state = request.app[STATE]
    rt = state.runtime
    ex = Exchange(request_id(request), endpoint)
    in_flight = request.app[IN_FLIGHT]
    task = in_flight.enter()
    holders = rt.holders
    holders.count += 1  # the upstreams of `rt` stay open until it is done (see `Reloader._retire`)
    try:
        try:
            key = auth.client_key(rt.keys, request.headers, rt.config.server)
            ex.key_name = key.name if key else None
            resp = await handler(rt, ex, key)
        except ApiError as err:
            ex.status, ex.error = err.status, err.code
            resp = err.response(dialect, ex.request_id)
            resp.headers["x-request-id"] = ex.request_id
        except asyncio.CancelledError:
            if not in_flight.stopped() or task is None or in_flight.streams():  # (a stream that began: it ended
                raise  # as it could)
            uncancel(task)  # the shutdown's: the client is still there and gets told
            stopping = ApiError(503, "The router is shutting down; the request was stopped before its answer came.",
                                "server_shutting_down")
            ex.status, ex.error = stopping.status, stopping.code
            resp = stopping.response(dialect, ex.request_id)
            resp.headers["x-request-id"] = ex.request_id
        if not resp.prepared and not await _send(request, resp):
            ex.client_gone()
        return resp
    except asyncio.CancelledError:
        if in_flight.stopped():
            ex.error = "server_shutting_down"
        else:
            ex.client_gone()
        raise
    except Exception as exc:  # aiohttp's own errors, or a bug: answered as every route answers them
        resp = error_page(request, exc, dialect, ex.request_id)
        resp.headers["x-request-id"] = ex.request_id  # as on every answer of this frame (its record names it)
        ex.status = resp.status
        return resp
    finally:
        holders.count -= 1
        in_flight.leave(task)
        if ex.requested or ex.upstream_model:
            shown_names(ex, rt.keys)
        ex.finish(state.metrics, rt.config.server.access_log)


SHOWN_NAME_CHARS = 200


def shown_names(ex: Exchange, keys: tuple[ClientKey, ...]) -> None:
    """The record's model names as they may be logged and shown: a key pasted as the model name stays out of the
    log and the console, and so does a name of any length (cut to `SHOWN_NAME_CHARS`; a key is found before the
    cut). The upstream model is the client's text too where a wildcard entry sent it on."""
    requested, upstream = ex.requested, ex.upstream_model
    if requested:
        ex.requested = _shown(requested, keys)
    if upstream:
        ex.upstream_model = ex.requested if upstream == requested else _shown(upstream, keys)


def _shown(name: str, keys: tuple[ClientKey, ...]) -> str:
    if keys:
        name = scrub_text(name, [k.key for k in keys])
    return name[:SHOWN_NAME_CHARS]


def error_page(request: web.Request, exc: Exception, dialect: str | None = None, request_id: str = "") -> web.Response:
    """What a route answers for an exception it did not turn into an answer itself, in the route's shape
    (Anthropic's on the Messages routes, whatever the status, else OpenAI's): an `ApiError` as it is, aiohttp's own
    errors (no such route, wrong method, a body past its limit) as JSON instead of aiohttp's text pages (a status
    below 400 is re-raised for aiohttp; an `anthropic-version` header picks Anthropic's shape for them too), a
    body nested too deep a 400, anything else a 500 (logged). `dialect` is the route's when known, else the
    path's; `request_id` names the request in Anthropic's shape (see `ApiError.response`)."""
    if dialect is None:
        dialect = "anthropic" if request.path.startswith("/v1/messages") else "openai"
    if isinstance(exc, ApiError):
        return exc.response(dialect, request_id)
    if isinstance(exc, (jsoncodec.TooDeep, RecursionError)):  # a body nested past what the router can write
        # again (orjson reads 1,024 levels, the rest of the router writes fewer): the client's to change
        return ApiError(400, "The request nests JSON deeper than the router can send on.", "invalid_request").response(
            dialect, request_id)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        what = f"{request.method} {request.path[:200]}"
        message = {404: f"No route matches {what}.", 405: f"{what}: method not allowed."}.get(exc.status, exc.reason)
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        anthropic = dialect == "anthropic" or "anthropic-version" in request.headers
        return ApiError(exc.status, message, code, headers=headers).response("anthropic" if anthropic else "openai",
                                                                             request_id)
    log.error("unexpected error on %s %s", request.method, request.path[:200], exc_info=exc)
    return ApiError(500, "Internal error; the router's log has the details.", "internal_error").response(dialect,
                                                                                                          request_id)


UNWATCHED_BYTES = 16 << 10  # a whole answer this small never waits on its client: the transport takes it at once
# (a write waits only past the transport's high-water mark, 64 KiB on asyncio's and uvloop's)


async def _send(request: web.Request, resp: web.StreamResponse) -> bool:
    """A whole response written here rather than by aiohttp after the handler returns, so that the record's
    metrics and log line are made once the client has its answer, not while it waits; False when the client was
    gone. A client that stops reading is let go as a stream's is (`WriteWatch`); one gone meanwhile is left to
    aiohttp, as when it writes the response itself (it tries once more, fails, and closes)."""
    try:
        await resp.prepare(request)
        size = resp.content_length
        if size is not None and size <= UNWATCHED_BYTES:  # the usual answer: no timer armed and cancelled for it
            await resp.write_eof()
        else:
            await WriteWatch.of(request).write(resp.write_eof())
    except (ConnectionError, ClientGone):
        return False
    return True


async def read_noted(request: web.Request, rt: LiveConfig, ex: Exchange) -> dict[str, Any]:
    """The JSON body, noted in the record before anything can refuse it (see `note_request`)."""
    _, body = await read_json(request, rt)
    note_request(ex, body)
    return body


def note_request(ex: Exchange, body: dict[str, Any]) -> None:
    """What the record shows even when the request is then refused: the model asked for, whether it streams."""
    model = body.get("model")
    if isinstance(model, str):
        ex.requested = model  # cut when the record is written (see handle_exchange)
    ex.stream = body.get("stream") is True


def resolve(request: web.Request, rt: LiveConfig, ex: Exchange, key: ClientKey | None, model: str) -> RequestContext:
    """The request's context, with the route for `model`, after checking the key may use it and every model it
    falls back to (404 unknown, 403 not allowed). Nothing below the routes sees the aiohttp request."""
    ex.requested = model
    route = rt.table.resolve_for(model, key.models if key is not None else None)
    state = request.app[STATE]
    return RequestContext(ex, route, key, rt, state.metrics, state.tool_indexes,
                          upstream_headers(ex.request_id, request.headers, route.model.repair.mode),
                          state.known_history)


_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


_ID_BITS = random.Random().getrandbits  # its own generator, seeded from the operating system once


def request_id(request: web.Request) -> str:
    """The client's `x-request-id` when it is a sane token, else 24 fresh hex digits. A request id only has to
    be unique (it names a request in logs and headers; nothing is authorised by it), so it comes from a generator
    seeded once rather than a system call per request."""
    given = request.headers.get("x-request-id")
    if given and len(given) <= 128 and all(c in _ID_OK for c in given) and not _holds_key(request, given):
        return given
    return f"{_ID_BITS(96):024x}"


def _holds_key(request: web.Request, given: str) -> bool:
    """Whether a request id holds a client key, configured or presented (a client that sends its key as its
    request id would have it logged, shown in the console and sent upstream)."""
    presented = [auth.bearer(request.headers), request.headers.get("x-api-key")]
    keys = [*presented, *(k.key for k in request.app[STATE].runtime.keys)]
    # a short key (a placeholder such as "x") is looked for whole: as a part, most ids would hold it
    return any(k and (k in given if len(k) >= MIN_KEY_IN_ID else k == given) for k in keys)


MIN_KEY_IN_ID = 8
CONTAINERS_CHECKED_OVER = 1 << 20  # bytes: a smaller body is not counted (its parse is bounded by its size)


async def read_json(request: web.Request, rt: LiveConfig) -> tuple[bytes, dict[str, Any]]:
    limit = rt.config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    raw = await read_body(request, limit, rt.config.server.idle_timeout)
    if not raw:
        raise ApiError(400, "The request body is empty; expected a JSON object.", "invalid_json")
    if len(raw) > CONTAINERS_CHECKED_OVER:  # parsed, each `{}` costs ~30x its bytes: bounded before it is
        containers = raw.count(b"{") + raw.count(b"[")
        if containers > rt.config.server.max_body_containers:
            raise ApiError(413, f"The request body has {containers} JSON objects and arrays (brackets), over the "
                                f"limit of {rt.config.server.max_body_containers} (server.max_body_containers) "
                                "for bodies over 1 MiB.", "request_too_large")
    state = request.app[STATE]
    # an agent's history and tools, resent as they were: not parsed again
    known, found = state.known_history.parse(raw, state.tool_indexes.known)
    if known is not None:
        state.known_history.learn(raw, known, found)
        return raw, known
    try:
        body = jsoncodec.loads_text(raw)
    except jsoncodec.LoneSurrogate:
        raise ApiError(400, "The request body contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff).",
                       "invalid_json") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {_short(exc)}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"The request body must be a JSON object, not {json_type(body)}.", "invalid_json")
    state.known_history.learn(raw, body, None)
    return raw, body


CONTINUE_OWED = web.RequestKey("continue_owed", bool)  # `Expect: 100-continue` met, its interim 100 not yet sent


async def ask_for_body(request: web.Request) -> None:
    """The interim `100 Continue` a client that sent `Expect: 100-continue` waits for before it sends its body,
    sent when the route first reads the body: an answer known before that (a 401, a 413 for a declared length)
    goes out without it, and the body is never sent (the connection is then closed after the answer)."""
    if request.get(CONTINUE_OWED):
        request[CONTINUE_OWED] = False
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # (the answer's own bytes are counted from here)


async def read_body(request: web.Request, limit: int, idle: float) -> bytes:
    """The whole body, at most `limit` bytes; a client that sends nothing for `idle` seconds gets 408 (a stalled
    or half-open connection never holds a handler forever). What has already arrived is taken without a wait."""
    await ask_for_body(request)
    parts: list[bytes] = []
    size = 0
    content = request.content
    while True:
        try:
            chunk = content.read_nowait()
            if not chunk and not content.at_eof():
                chunk = await with_timeout(content.readany(), idle)  # no extra task: a cancel stays a cancel
        except asyncio.TimeoutError:
            raise ApiError(408, f"The request body stalled: nothing arrived for {idle:g} seconds.",
                           "request_timeout") from None
        except ConnectionResetError:  # the client went away mid-body: the same as its handler being cancelled
            raise asyncio.CancelledError from None
        except (RequestPayloadError, HttpProcessingError):  # a Content-Encoding the body does not have, a broken
            # chunked body (aiohttp's pure-Python parser hands its own error to a read that waits on the body)
            raise ApiError(400, "The request body could not be read as its headers describe it (Content-Encoding, "
                                "chunked framing).", "invalid_body") from None
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)


def require_model(body: dict[str, Any]) -> str:
    """The request's `model`; none (absent, null or empty) is OpenAI's 400 for it, `param` and `code` null
    (`invalid_model` names it in the router's logs and metrics), another type OpenAI's `invalid_type`."""
    model = body.get("model")
    if isinstance(model, str) and model:
        return model
    if model is None or model == "":
        raise UncodedError(400, "you must provide a model parameter", "invalid_model")
    raise ApiError(400, f"Invalid type for 'model': expected a string, but got {json_type(model)} instead.",
                   "invalid_type", param="model")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body exceeds the limit of {limit} bytes.", "request_too_large")


def _short(exc: Exception) -> str:
    return str(exc)[:200]
