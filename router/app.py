"""The application factory: routes, state under AppKeys, and lifecycles in cleanup_ctx."""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web, web_response
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from .api import common, docs, health, messages, models, openai_routes, ops, responses, swap
from .config.model import Config
from .console import api as ui
from .console import install as install_console
from .drain import END_S, IN_FLIGHT, InFlight, drain_on_shutdown
from .early_signals import notify
from .engines_bridge import engine_states, make_supervisor
from .listener import AcceptingSite, accepts_one_per_pass
from .live_config import LiveConfig
from .logs import gather_lines
from .metrics import Metrics
from .protocol import Runner, expectation_failed
from .relay import WRITE_STALL_S
from .reload import RELOADER, Reloader
from .state import STATE, AppState

log = logging.getLogger("agentgate")


SERVER_NAME = "agentgate"


def _name_the_server() -> None:
    """Every answer says `Server: agentgate`, not aiohttp's default, which names its own and Python's versions
    (`Python/3.11 aiohttp/3.x`: what a scanner matches against advisories). aiohttp writes that default into each
    response that sets no Server header as it prepares the headers, its own error pages included (a malformed
    request's 400, which no route, hook or middleware sees): set as the default, the name costs a request nothing
    (a middleware or a prepare hook would be called for each)."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]  # (imported there, not re-exported)


def create_app(config: Config, *, config_path: str | None = None,
               overrides: dict[str, Any] | None = None) -> web.Application:
    _name_the_server()
    # The body limit is enforced per route (OpenAI-shaped 413); aiohttp's own cap sits just above it.
    app = web.Application(client_max_size=config.server.max_body_bytes + 1, handler_args={"max_field_size": 16384})
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUESTS)
    metrics = Metrics()
    supervisor = make_supervisor(config, metrics) if any(m.engine is not None for m in config.models) else None
    state = app[STATE] = AppState(runtime=LiveConfig.build(config, metrics, supervisor), metrics=metrics,
                                  supervisor=supervisor, config_path=config_path, overrides=dict(overrides or {}))
    metrics.follow_engines(lambda: engine_states(state.supervisor))  # the supervisor a reload may bring, too
    app[RELOADER] = Reloader(app)
    app[IN_FLIGHT] = InFlight()
    app[WRITE_STALL_S] = config.server.idle_timeout  # a stream's write its client leaves unread ends it (relay)
    app.on_shutdown.append(drain_on_shutdown)  # (the listening sockets are closed by then)
    app[ops.STATS_POLL] = ops.StatsPoll()
    app[responses.RESPONSE_STORE] = responses.StoreHolder()
    app.on_response_prepare.append(_unread_body_not_inflated)
    app.add_routes([web.RouteDef(r.method, r.path, r.handler if r.handler in _FRAMED else _guarded(r.handler),
                                 {**r.kwargs, "expect_handler": _expect})
                    for r in ROUTES if isinstance(r, web.RouteDef)])
    app.router.add_route("*", "/{tail:.*}", _no_route, expect_handler=_expect)  # last: what no route above takes
    # lifecycles, started in this order and stopped in the reverse one
    app.cleanup_ctx.append(_upstreams)
    app.cleanup_ctx.append(swap.preload_engines)  # engines marked `preload` start with the router
    install_console(app)  # the console's state, hooked to the request record; appends its own lifecycle
    app.cleanup_ctx.append(ops.sighup_reload)
    app.cleanup_ctx.append(responses.close_store)
    return app


ROUTES = [
    # the APIs clients call
    web.post("/v1/chat/completions", openai_routes.chat_completions),
    web.post("/v1/completions", openai_routes.completions),
    web.post("/v1/embeddings", openai_routes.embeddings),
    web.post("/v1/messages", messages.create_message),
    web.post("/v1/messages/count_tokens", messages.count_tokens),
    web.post("/v1/responses", responses.create_response),
    web.get("/v1/responses/{id}", responses.get_response),
    web.delete("/v1/responses/{id}", responses.delete_response),
    web.get("/v1/responses/{id}/input_items", responses.list_input_items),
    web.post("/v1/responses/{id}/cancel", responses.cancel_response),
    web.post("/v1/responses/input_tokens", responses.count_input_tokens),
    web.get("/v1/models", models.list_models),
    web.get("/v1/models/{id:.+}", models.get_model),
    web.get(docs.PATH, docs.openapi),
    # operations
    web.get("/health", health.health),
    web.get("/ready", health.ready),
    web.get("/metrics", ops.metrics),
    web.post("/admin/reload", ops.admin_reload),
    # llama-swap's operator endpoints (api/swap.py)
    web.get("/running", swap.running),
    web.route("GET", "/unload", swap.unload),  # llama-swap's clients unload with GET
    web.post("/unload", swap.unload),
    web.post("/unload/{model:.+}", swap.unload),  # an engine name may hold a slash, as in /upstream
    web.post("/api/models/unload", swap.unload),
    web.post("/api/models/unload/{model:.+}", swap.unload),
    web.route("*", "/upstream/{rest:.+}", swap.upstream),
    # the operator console (console/): the page, then its JSON under /ui/api/
    web.get("/ui", ui.page),
    web.get("/ui/", ui.page),
    web.get("/ui/static/{file}", ui.static),
    web.get("/ui/api/state", ui.state),
    web.get("/ui/api/requests", ui.requests_),
    web.get("/ui/api/log", ui.log_lines),
    web.get("/ui/api/captures", ui.captures),
    web.get("/ui/api/captures.jsonl", ui.captures_jsonl),
    web.get("/ui/api/captures/{id}", ui.capture),
    web.post("/ui/api/engines/{name}/unload", ui.unload),
    web.post("/ui/api/probe", ui.probe_start),
    web.get("/ui/api/probe", ui.probe_status),
]


def _guarded(handler: Handler) -> Handler:
    """A route's handler with aiohttp's own errors (a body past its limit) and anything it did not expect answered
    as OpenAI-shaped JSON instead of aiohttp's text pages (`common.error_page`). The proxying routes do this in
    their own frame (`common.handle_exchange`), so no layer is added on their way: the app has no middleware
    (with one, aiohttp adds two more coroutine layers and a cache lookup to every request)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception as exc:
            return common.error_page(request, exc)

    return guarded


async def _no_route(request: web.Request) -> web.StreamResponse:
    """Every path and method no route takes (the last route): 404, or 405 with the methods the path allows, in
    the route's error shape, as aiohttp would have answered them."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if all(route.handler is not _no_route for route in resource):
            _, methods = await resource.resolve(request)
            allowed |= methods
    exc = web.HTTPMethodNotAllowed(request.method, allowed) if allowed else web.HTTPNotFound()
    rid = common.request_id(request)
    resp = common.error_page(request, exc, request_id=rid)
    if "request-id" in resp.headers:  # Anthropic's shape names the request, as the Messages routes' errors do
        resp.headers["x-request-id"] = rid
    return resp


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """Every route's answer to an `Expect` header: 100-continue met when the route reads the body (the interim 100
    then, `common.ask_for_body`; aiohttp sent it before the route ran, so a 401 or a 413 for a body declared too
    large asked for the body it refused), any other expectation a 417 in the route's error shape that does not
    quote the header (aiohttp's text page echoed its value, which a client that mis-set a header could have filled
    with a key). HTTP/1.0 has no Expect: aiohttp ignores it there, as before."""
    if request.version != HttpVersion11:
        return None
    if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":  # (as aiohttp's own expect handler reads it)
        request[common.CONTINUE_OWED] = True
        return None
    err = expectation_failed()
    anthropic = request.path.startswith("/v1/messages") or "anthropic-version" in request.headers
    rid = common.request_id(request)
    resp = err.response("anthropic" if anthropic else "openai", rid)
    if anthropic:  # Anthropic's shape names the request, as the Messages routes' errors do
        resp.headers["x-request-id"] = rid
    return resp


# the proxying routes: their own frame (`common.handle_exchange`) answers what they did not expect
_FRAMED = frozenset({openai_routes.chat_completions, openai_routes.completions, openai_routes.embeddings,
                     messages.create_message, messages.count_tokens, responses.create_response,
                     responses.count_input_tokens, responses.get_response, responses.delete_response,
                     responses.list_input_items, responses.cancel_response})


class UnreadBody(Exception):
    """A compressed request body the route answered without reading to its end: not read after the answer."""


async def _unread_body_not_inflated(request: web.Request, response: web.StreamResponse) -> None:
    """After an answer aiohttp reads what the route left of the request's body (for up to 10 s, so that a client
    still sending gets it), inflating a compressed body as it goes: a few hundred kilobytes that inflate to
    gigabytes cost a core for those seconds, for any client (a 401 leaves the body unread). Such a body's rest is
    refused instead: the connection is closed once the answer is written. A body that had all arrived is not.
    So is a body the client holds back until it is asked for it (`Expect: 100-continue` with the route answering
    before it read the body): it will not come, and the answer says the connection closes."""
    body = request.content
    exc = body.exception()
    if exc is not None and not isinstance(exc, UnreadBody):  # a body that could not be read as its headers
        response.force_close()  # describe it (broken chunks, a Content-Encoding it does not have): the connection
        response.headers[hdrs.CONNECTION] = "close"  # ends with the answer, which says so
        return
    if body.is_eof() or exc is not None:
        return
    if request.get(common.CONTINUE_OWED) and body.total_bytes == 0:  # (a client already sending its body without
        # waiting for the 100, as it may, has the rest read and dropped as before: closing on unread bytes resets)
        response.force_close()
        response.headers[hdrs.CONNECTION] = "close"  # (its headers were prepared before this hook)
        body.set_exception(UnreadBody())
    elif "Content-Encoding" in request.headers:
        body.set_exception(UnreadBody())


class _MalformedRequests(logging.Filter):
    """aiohttp logs a malformed request with the offending bytes, which may be an Authorization header, and a body
    it could not decode (a Content-Encoding it does not have, broken chunks) with a traceback ("Unhandled
    exception", when it reads what the route left unread, even after a 401): keep the fact, drop the bytes and the
    traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UnreadBody):  # (the router's own choice: nothing went wrong)
            return False
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "rejected a malformed HTTP request (%s, %s)", (exc.code, type(exc).__name__)
            record.exc_info, record.exc_text = None, None
        elif isinstance(exc, RequestPayloadError):
            cause = type(exc.__cause__ or exc).__name__
            record.msg, record.args = "rejected a request body that could not be read (%s)", (cause,)
            record.exc_info, record.exc_text = None, None
        return True


_MALFORMED_REQUESTS = _MalformedRequests()


async def _upstreams(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    for up in state.runtime.upstreams.values():
        await up.start()
    yield
    if state.supervisor is not None:
        await state.supervisor.close()
    for up in state.runtime.upstreams.values():
        await up.close()


class ListenError(Exception):
    """The router could not bind its address (in use, not permitted, no such address)."""


@dataclass
class Running:
    runner: web.AppRunner
    url: str  # http://host:port

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Start serving `app`; port 0 picks a free port. Client disconnects cancel their handlers."""
    idle = app[STATE].runtime.config.server.idle_timeout  # an idle or half-open client connection is closed
    runner = Runner(app, handler_cancellation=True, access_log=None, shutdown_timeout=END_S,
                    keepalive_timeout=idle)  # (the drain is `drain_on_shutdown`'s: see `router.drain`)
    # (aiohttp's own error answers, a malformed request's 400 among them, in the routes' shape: `router.protocol`)
    await runner.setup()
    # a burst of new connections accepted at once where the loop would take one per pass (uvloop's libuv)
    site = AcceptingSite(runner, host, port) if accepts_one_per_pass(asyncio.get_running_loop()) \
        else web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    app[IN_FLIGHT].server = runner.server
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
    return Running(runner, f"http://{bound[0]}:{bound[1]}")


GC_YOUNG_THRESHOLD = 20_000


def settle_gc() -> None:
    """Once the router is up: what start-up built (modules, config, compiled schemas, pools) is moved out of the
    cyclic collector's reach (`gc.freeze`), and the young generation is collected after 20,000 net allocations
    instead of 700. A request's objects are freed by their reference counts (under load the collector found
    nothing to free), yet every few requests it walked the live ones, and about every 2,000 requests all ~50k
    start-up objects (a 50 ms pause): ~5 % of a request's CPU. Cyclic garbage is still collected, later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _listen_reason(exc: OSError) -> str:
    """Why listening failed, in a few lower-case words: the resolver's reason for a host name that does not resolve
    (its `errno` is a getaddrinfo code, which `os.strerror` does not know), else the system's for the errno (the
    loop's own message repeats the address)."""
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror or exc).lower()
    return (os.strerror(exc.errno) if exc.errno else str(exc)).lower()


def run(config: Config, *, config_path: str | None = None, overrides: dict[str, Any] | None = None) -> None:
    """Serve until SIGINT/SIGTERM (graceful: in-flight requests drain)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - Windows
        pass

    async def main() -> None:
        import signal

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()  # (set by SIGINT/SIGTERM from here on: one during start-up stops it gracefully)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app = create_app(config, config_path=config_path, overrides=overrides)
        try:
            running = await start(app, config.server.host, config.server.port)
        except OSError as exc:
            hint = " (is another agentgate running? --port picks another port)" if exc.errno == errno.EADDRINUSE \
                else ""
            raise ListenError(f"cannot listen on {config.server.host}:{config.server.port}: "
                              f"{_listen_reason(exc)}{hint}") from None
        settle_gc()
        notify("READY=1")  # (Type=notify: `systemctl start` returns now)
        gather_lines(loop)  # the log lines of one pass of the loop are written together
        try:
            log.info("listening", extra={"fields": {"url": running.url, "config": config.source}})
            await stop.wait()
            notify("STOPPING=1")
            log.info("shutting down: draining in-flight requests")
            await running.stop()
        finally:
            gather_lines(None)

    asyncio.run(main())
