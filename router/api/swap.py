"""llama-swap's operator endpoints, for people and tools that know them.

    GET  /running                         engines that are starting, ready or stopping
    POST /unload  (also GET, as llama-swap)   stop every engine (in-flight requests drain first, bounded)
    POST /unload/{model}                  stop one engine (a model name or alias); /api/models/unload[/{model}] too
    ANY  /upstream/{model}/{path}         an engine's own routes (e.g. /upstream/demo/stats), starting it if needed

Entries with `preload: true` start with the router (`preload_engines`, in the app's cleanup_ctx).

`/running` and `/upstream` need a client key when keys are configured (`/upstream` one allowed the model); `/unload`
needs what `/admin/reload` needs: an unrestricted key, unless `server.admin_auth: false`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from engines.supervisor.types import EngineStatus, EngineSupervisor

from .. import auth
from ..backpressure import WriteWatch
from ..config.model import ModelConfig, all_secrets
from ..drain import IN_FLIGHT
from ..errors import ApiError
from ..live_config import LiveConfig
from ..redact import scrub_text
from ..relay import ClientGone
from ..state import STATE, AppState
from .common import read_body

log = logging.getLogger("agentgate.engine")

_LIVE = frozenset({"starting", "ready", "stopping"})  # the states with a process
UNLOAD_DRAIN_S = 10.0  # how long /unload lets in-flight requests of an engine finish before stopping it
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                         "transfer-encoding", "upgrade", "host", "content-length", "authorization", "x-api-key",
                         "cookie"})


def engine_entry(rt: LiveConfig, name: str) -> ModelConfig:
    """The engine entry `name` (or an alias of it) names; 404 when it names none."""
    found = rt.table.lookup(name)
    if found is None:
        rt.table.resolve(name)  # raises the router's 404, with the near names
    assert found is not None
    entry, suffix = found
    if suffix:
        raise ApiError(404, f"{name[:200]!r} matches the wildcard {entry.name!r}, not a local engine.",
                       "engine_not_found")
    if entry.engine is None:
        raise ApiError(404, f"Model {name!r} is served by a provider, not a local engine; only engines can be "
                       "loaded, unloaded or reached under /upstream.", "engine_not_found")
    return entry


def _supervisor(state: AppState) -> EngineSupervisor:
    if state.supervisor is None:
        raise ApiError(404, "No local engines are configured (no model has engine: or command:).",
                       "engine_not_found")
    return state.supervisor


# --- GET /running --------------------------------------------------------------------------------------------------

async def running(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rt = state.runtime
    key = auth.client_key(rt.keys, request.headers, rt.config.server)  # a refusal: the route's guard answers
    rows = []
    if state.supervisor is not None:
        entries = {m.name: m for m in rt.config.models if m.engine is not None}
        for name, st in state.supervisor.states().items():
            if st.state not in ("starting", "ready", "stopping"):
                continue
            entry = entries.get(name)
            if key is not None and key.models is not None and name not in key.models \
                    and not (entry is not None and key.models.intersection(entry.aliases)):
                continue  # a key limited to some models sees those only (as in /v1/models)
            engine = entry.engine if entry is not None else None
            rows.append({
                "model": name, "state": st.state, "pid": st.pid, "in_flight": st.in_flight,
                "ttl": engine.ttl if engine is not None else None,
                "ttl_left": ttl_left(st, engine.ttl if engine is not None else None),
                "load_seconds": None if st.load_seconds is None else round(st.load_seconds, 3),
                "kind": engine.kind if engine is not None else None,
                "description": entry.description if entry is not None else "",
            })
    return web.json_response({"running": rows})


def ttl_left(status: EngineStatus, ttl: float | None) -> float | None:
    """Seconds until an idle ready engine is unloaded (None: no ttl, or busy)."""
    if not ttl or status.state != "ready" or status.in_flight or status.last_used is None:
        return None
    last_used: float = status.last_used
    return round(max(0.0, ttl - (time.time() - last_used)), 1)


# --- /unload -------------------------------------------------------------------------------------------------------

async def unload(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rt = state.runtime
    try:
        auth.require_operator(rt.keys, rt.config.server.admin_auth, request.headers, "manage the router",
                              rt.config.server)
        supervisor = _supervisor(state)
        name = request.match_info.get("model") or request.query.get("model")
        if name:
            names = [engine_entry(rt, name).name]
        else:
            names = [n for n, st in supervisor.states().items() if st.state in _LIVE]
    except ApiError as err:
        return err.response()
    stopped = await stop_engines(supervisor, names)
    return web.json_response({"status": "ok", "unloaded": stopped})


async def stop_engines(supervisor: EngineSupervisor, names: list[str]) -> list[str]:
    """Stop `names` (each after its in-flight requests drain, at most UNLOAD_DRAIN_S); the names that were running."""
    states = supervisor.states()
    active = [n for n in names if n in states and states[n].state in _LIVE]  # a failed engine has no process

    async def stop(name: str) -> None:
        try:
            await supervisor.stop(name, drain_timeout=UNLOAD_DRAIN_S)
        except KeyError:  # removed by a reload meanwhile
            pass

    await asyncio.gather(*(stop(n) for n in names))
    for name in active:
        log.info("engine %s: unloaded on request", name, extra={"engine": name})
    return active


# --- /upstream/{model}/{path} --------------------------------------------------------------------------------------

async def upstream(request: web.Request) -> web.StreamResponse:
    """Forward the request to the engine's own server: method, path, query and body as sent (client credentials
    removed; a gzip, deflate, br or zstd body decoded, without its Content-Encoding); the engine is started if it
    is not running, and counted in flight until the answer is sent."""
    from engines.supervisor.lifecycle import EngineUnavailable

    state = request.app[STATE]
    rt = state.runtime
    try:
        key = auth.client_key(rt.keys, request.headers, rt.config.server)
        supervisor = _supervisor(state)
        name, path = _split(rt, request.rel_url.raw_path.removeprefix("/upstream/"))
        entry = engine_entry(rt, name)
        auth.check_model_allowed(key, name, entry.name)
        limit = rt.config.server.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, f"The request body exceeds the limit of {limit} bytes.", "request_too_large")
        body = await read_body(request, limit, rt.config.server.idle_timeout)  # a stalled body: 408
    except ApiError as err:
        return err.response()
    headers = _end_to_end(request.headers, _decoded(request))
    in_flight = request.app[IN_FLIGHT]
    task = in_flight.enter()  # a shutdown gives it the drain time (then cuts it: the engine's bytes have no
    try:  # terminal event of ours)
        async with supervisor.lease(entry.name) as endpoint:
            base = endpoint.base_url.removesuffix("/").removesuffix("/v1")
            query = request.rel_url.raw_query_string
            url = URL(base + path + (f"?{query}" if query else ""), encoded=True)  # as the client spelled it
            connector = aiohttp.UnixConnector(path=endpoint.unix_socket) if endpoint.unix_socket else None
            async with aiohttp.ClientSession(connector=connector, timeout=UPSTREAM_TIMEOUT,
                                             auto_decompress=False) as session, \
                    session.request(request.method, url, data=body or None, headers=headers,
                                    allow_redirects=False) as upstream_resp:
                return await _relay(request, upstream_resp)
    except EngineUnavailable as exc:
        reason = scrub_text(exc.reason, all_secrets(rt.config))  # (what it printed as it failed)
        return ApiError(503, f"Engine {entry.name!r} is unavailable: {reason}", "engine_unavailable").response()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return ApiError(502, f"Engine {entry.name!r} did not answer ({type(exc).__name__}).",
                        "upstream_error").response()
    finally:
        in_flight.leave(task)


def _split(rt: LiveConfig, raw: str) -> tuple[str, str]:
    """`{model}/{path}` of the request's path as sent (percent-encoded), where a model name may itself contain
    slashes: the model name (decoded) is the longest engine name that prefixes it, and the path is kept as the client
    encoded it (an `%2F` or `%3F` in it is not turned into a path separator or a query)."""
    parts = raw.split("/")
    for i in range(len(parts) - 1, 0, -1):
        name = "/".join(unquote(p) for p in parts[:i])
        entry = rt.table.exact.get(name)
        if entry is not None and entry.engine is not None:
            return name, "/" + "/".join(parts[i:])
    return unquote(parts[0]), "/" + "/".join(parts[1:])


def _end_to_end(headers: CIMultiDictProxy[str], dropped: Iterable[str] = ()) -> CIMultiDict[str]:
    """The fields of `headers` a proxy passes on: not the hop-by-hop ones (the fixed list, and each field the
    message's `Connection` header names: RFC 9110 section 7.6.1), nor those named in `dropped`."""
    named = {token.strip(" \t").lower() for value in headers.getall("Connection", ()) for token in value.split(",")}
    hop = _HOP_BY_HOP | named | {name.lower() for name in dropped}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in hop)


def _decoded(request: web.Request) -> tuple[str, ...]:
    """`Content-Encoding` when aiohttp's server decoded the body by it (gzip, deflate, br, zstd): `request.read()`
    gives the plain bytes, which that header no longer describes. Another coding is left as sent, and so is its
    header."""
    return ("Content-Encoding",) if request._message.compression else ()


async def _relay(request: web.Request, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """The engine's answer as it comes. Once its status line is sent, an engine that fails (it exits, resets, stops
    sending for `sock_read`) can only be told by cutting the connection before the body's end: the client sees a
    body cut short, never a second status line inside the body or a wait for an end that never comes."""
    out = web.StreamResponse(status=resp.status, reason=resp.reason)
    out.headers.extend(_end_to_end(resp.headers, ("Server",)))  # (the router's own, as on every answer)
    await out.prepare(request)
    watch = WriteWatch.of(request)  # a client that stops reading lets the engine go (see `router.backpressure`)
    try:
        async for chunk in resp.content.iter_any():
            await watch.write(out.write(chunk))
        await watch.write(out.write_eof())
    except ClientGone:
        log.info("a client stopped reading an engine's answer under /upstream: its connection was closed")
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:  # the engine's side, or the client gone
        log.warning("an engine's answer under /upstream was cut short (%s)", type(exc).__name__)
        if request.transport is not None:
            request.transport.close()  # aiohttp's write of the body's end then fails, and it drops the connection
    return out


# --- preload -------------------------------------------------------------------------------------------------------

async def preload_engines(app: web.Application) -> AsyncIterator[None]:
    """Start the engines whose entries say `preload: true` once the router is up (in the background: serving
    does not wait for them); a failure is logged and the engine starts again on its first request."""
    state = app[STATE]
    names = [m.name for m in state.runtime.config.models if m.engine is not None and m.engine.preload]
    tasks = [asyncio.ensure_future(preload_engine(state, n)) for n in names] if state.supervisor is not None else []
    yield
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def preload_engine(state: AppState, name: str) -> None:
    """Start engine `name` now, as its first request would (at start-up, and after a reload that adds or changes a
    preload entry); a failure is logged."""
    from engines.supervisor.lifecycle import EngineUnavailable

    supervisor = state.supervisor
    assert supervisor is not None  # preload tasks are started only when there is one
    try:
        async with supervisor.lease(name):
            log.info("engine %s: preloaded", name, extra={"engine": name})
    except EngineUnavailable as exc:
        log.warning("engine %s: preload failed: %s", name, exc.reason, extra={"engine": name})
