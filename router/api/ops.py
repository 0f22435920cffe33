"""Operations routes: `GET /metrics` (Prometheus text format), `POST /admin/reload`, and reload on SIGHUP.

`/metrics` needs a client key when `server.metrics_auth` is set and keys are configured. `/admin/reload` needs an
unrestricted client key when keys are configured, unless `server.admin_auth: false`. Before rendering, the latest
`/stats` of every ready engine is read (never starting one), at most once per `STATS_MIN_INTERVAL` while the set
of ready engines stays the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from engines.supervisor.types import EngineState, EngineSupervisor

from .. import auth
from ..early_signals import take_deferred_sighup
from ..errors import ApiError
from ..metrics import CONTENT_TYPE, EngineStats
from ..reload import RELOADER
from ..state import STATE, AppState
from ..upstream.base import BodyTooLarge, read_limited

log = logging.getLogger("agentgate")

STATS_TIMEOUT = 1.0
MAX_STATS_BYTES = 1024 * 1024  # an engine's /stats document is a few KB: past this it is not one
STATS_MIN_INTERVAL = 1.0

# SIGHUP handlers per event loop, newest last: a process normally serves one app, but when several share a loop
# the most recently started one owns the signal and an app that stops hands it back to the previous one.
_SIGHUP_OWNERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Callable[[], None]]] = \
    weakref.WeakKeyDictionary()


# --- /metrics ------------------------------------------------------------------------------------------------------

async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rt = state.runtime
    if rt.config.server.metrics_auth:
        auth.client_key(rt.keys, request.headers, rt.config.server)  # refused: the route's guard answers (app.py)
    else:  # open to programs on this machine (a scraper), not to a page that re-points its own name here
        auth.refuse_browsers(request.headers, rt.config.server)
    await request.app[STATS_POLL].refresh(state)
    return web.Response(body=state.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


class StatsPoll:
    """Reads `GET /stats` of the engines that are ready right now, without a lease (so never starting one)."""

    def __init__(self) -> None:
        self._last = 0.0
        self._ready: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()

    async def refresh(self, state: AppState) -> None:
        supervisor = state.supervisor
        collector = state.metrics.engine_stats
        if supervisor is None:
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            ready = [name for name, st in supervisor.states().items() if st.state == EngineState.READY]
            if frozenset(ready) == self._ready and loop.time() - self._last < STATS_MIN_INTERVAL:
                return
            collector.retain(ready)
            found = await asyncio.gather(*(self._fetch(supervisor, name) for name in ready))
            for name, stats in zip(ready, found, strict=True):
                if stats is None:
                    collector.forget(name)
                else:
                    collector.update(name, stats)
            self._last, self._ready = loop.time(), frozenset(ready)

    @staticmethod
    async def _fetch(supervisor: EngineSupervisor, name: str) -> EngineStats | None:
        doc = await engine_stats_doc(supervisor, name)
        return EngineStats.from_json(doc) if doc is not None else None


async def engine_stats_doc(supervisor: EngineSupervisor, name: str) -> dict[str, Any] | None:
    """A ready engine's own `/stats` document, or None when it is not ready or does not answer in time."""
    endpoint = supervisor.endpoint(name)
    if endpoint is None:
        return None
    base = endpoint.base_url.removesuffix("/").removesuffix("/v1")
    connector = aiohttp.UnixConnector(path=endpoint.unix_socket) if endpoint.unix_socket else None
    try:
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=STATS_TIMEOUT)) as session, \
                session.get(base + "/stats") as resp:
            if resp.status != 200:
                return None
            doc = json.loads(await read_limited(resp, MAX_STATS_BYTES))
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError, RecursionError, BodyTooLarge):
        return None
    return doc if isinstance(doc, dict) else None


# --- /admin/reload -------------------------------------------------------------------------------------------------

async def admin_reload(request: web.Request) -> web.Response:
    rt = request.app[STATE].runtime
    try:
        auth.require_operator(rt.keys, rt.config.server.admin_auth, request.headers, "reload the config",
                              rt.config.server)
    except ApiError as err:
        return err.response()
    result = await request.app[RELOADER].reload("http")
    if not result.ok:
        message = f"Config not reloaded; the previous config keeps serving. {result.error}"
        code = "invalid_config" if result.status == 400 else "reload_unavailable"
        return ApiError(result.status, message, code).response()
    return web.json_response(result.body())


# --- lifecycle -----------------------------------------------------------------------------------------------------

async def sighup_reload(app: web.Application) -> AsyncIterator[None]:
    """SIGHUP reloads the config while the app runs; at shutdown, pending reloads stop and retired upstreams
    close."""
    loop = asyncio.get_running_loop()
    reloader = app[RELOADER]
    pending: set[asyncio.Task[Any]] = set()

    def on_sighup() -> None:
        log.info("SIGHUP: reloading the config")
        task = loop.create_task(reloader.reload("signal"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    installed = _install_sighup(loop, on_sighup)
    if installed and take_deferred_sighup():  # one came while the router was starting
        on_sighup()
    yield
    if installed:
        _remove_sighup(loop, on_sighup)
    for task in list(pending):
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await reloader.close()


def _install_sighup(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> bool:
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False
    try:
        loop.add_signal_handler(signal.SIGHUP, handler)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    _SIGHUP_OWNERS.setdefault(loop, []).append(handler)
    return True


def _remove_sighup(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> None:
    owners = _SIGHUP_OWNERS.get(loop, [])
    was_current = bool(owners) and owners[-1] is handler
    if handler in owners:
        owners.remove(handler)
    if not was_current:
        return
    if owners:
        loop.add_signal_handler(signal.SIGHUP, owners[-1])
    else:
        loop.remove_signal_handler(signal.SIGHUP)


def sighup_installed(loop: asyncio.AbstractEventLoop) -> bool:
    return bool(_SIGHUP_OWNERS.get(loop))


STATS_POLL = web.AppKey("agentgate_stats_poll", StatsPoll)
