"""The application factory: routes, state under AppKeys, and lifecycles in cleanup_ctx."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from .api import health, models, openai_routes, swap
from .config.model import Config
from .console import api as ui
from .console import install as install_console
from .errors import ApiError
from .metrics import Metrics
from .runtime import Runtime
from .state import STATE, AppState

log = logging.getLogger("agentgate")


def create_app(config: Config, *, config_path: str | None = None) -> web.Application:
    # The body limit is enforced per route (OpenAI-shaped 413); aiohttp's own cap sits just above it.
    app = web.Application(client_max_size=config.server.max_body_bytes + 1, handler_args={"max_field_size": 16384},
                          middlewares=[_json_errors])
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUESTS)
    metrics = Metrics()
    supervisor = None
    if any(m.engine is not None for m in config.models):
        from .engines_bridge import make_supervisor

        supervisor = make_supervisor(config, metrics)
    app[STATE] = AppState(runtime=Runtime.build(config, metrics, supervisor), metrics=metrics,
                          supervisor=supervisor, config_path=config_path)
    app.cleanup_ctx.append(_upstreams)
    app.router.add_post("/v1/chat/completions", openai_routes.chat_completions)
    app.router.add_post("/v1/completions", openai_routes.completions)
    app.router.add_post("/v1/embeddings", openai_routes.embeddings)
    app.router.add_get("/v1/models", models.list_models)
    app.router.add_get("/v1/models/{id:.+}", models.get_model)
    app.router.add_get("/health", health.health)
    app.router.add_get("/ready", health.ready)
    # llama-swap's operator endpoints (api/swap.py); engines marked `preload` start with the router
    app.router.add_get("/running", swap.running)
    app.router.add_route("GET", "/unload", swap.unload)  # llama-swap's clients unload with GET
    app.router.add_post("/unload", swap.unload)
    app.router.add_post("/unload/{model}", swap.unload)
    app.router.add_post("/api/models/unload", swap.unload)
    app.router.add_post("/api/models/unload/{model}", swap.unload)
    app.router.add_route("*", "/upstream/{rest:.+}", swap.upstream)
    app.cleanup_ctx.append(swap.preload_engines)
    # the operator console (console/): the page, then its JSON under /ui/api/
    install_console(app)
    app.router.add_get("/ui", ui.page)
    app.router.add_get("/ui/", ui.page)
    app.router.add_get("/ui/static/{file}", ui.static)
    app.router.add_get("/ui/api/state", ui.state)
    app.router.add_get("/ui/api/requests", ui.requests_)
    app.router.add_get("/ui/api/log", ui.log_lines)
    app.router.add_get("/ui/api/captures", ui.captures)
    app.router.add_get("/ui/api/captures.jsonl", ui.captures_jsonl)
    app.router.add_get("/ui/api/captures/{id}", ui.capture)
    app.router.add_post("/ui/api/engines/{name}/unload", ui.unload)
    app.router.add_post("/ui/api/probe", ui.probe_start)
    app.router.add_get("/ui/api/probe", ui.probe_status)
    _optional_routes(app)
    return app


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (no such route, wrong method) and anything a handler did not expect, as OpenAI-shaped
    JSON instead of aiohttp's text pages."""
    try:
        return await handler(request)
    except ApiError as err:
        return err.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        what = f"{request.method} {request.path[:200]}"
        message = {404: f"No route matches {what}.", 405: f"{what}: method not allowed."}.get(exc.status, exc.reason)
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        anthropic = request.path.startswith("/v1/messages") or "anthropic-version" in request.headers
        return ApiError(exc.status, message, code, headers=headers).response("anthropic" if anthropic else "openai")
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path[:200])
        return ApiError(500, "Internal error; the router's log has the details.", "internal_error").response()


class _MalformedRequests(logging.Filter):
    """aiohttp logs a malformed request with the offending bytes, which may be an Authorization header: keep the
    fact, drop the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "rejected a malformed HTTP request (%s, %s)", (exc.code, type(exc).__name__)
            record.exc_info, record.exc_text = None, None
        return True


_MALFORMED_REQUESTS = _MalformedRequests()


def _optional_routes(app: web.Application) -> None:
    """Routes owned by other modules register themselves here."""
    import importlib

    for name in ("router.api.ops", "router.api.messages", "router.api.responses", "router.api.docs"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


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
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=30,
                           keepalive_timeout=idle)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
    return Running(runner, f"http://{bound[0]}:{bound[1]}")


def run(config: Config, *, config_path: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM (graceful: in-flight requests drain)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - Windows
        pass

    async def main() -> None:
        app = create_app(config, config_path=config_path)
        try:
            running = await start(app, config.server.host, config.server.port)
        except OSError as exc:
            hint = " (is another agentgate running? --port picks another port)" if exc.errno == errno.EADDRINUSE \
                else ""
            raise ListenError(f"cannot listen on {config.server.host}:{config.server.port}: "
                              f"{(os.strerror(exc.errno) if exc.errno else str(exc)).lower()}{hint}") from None
        log.info("listening", extra={"fields": {"url": running.url, "config": config.source}})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: draining in-flight requests")
        await running.stop()

    asyncio.run(main())
