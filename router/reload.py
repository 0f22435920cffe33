"""Hot reload: re-read the config file, build a new runtime next to the old one and swap it in.

A file that does not load is rejected with the reason and the old config keeps serving. Requests in flight keep
the runtime they started with; upstreams the new config no longer uses are closed once no request that started
before the reload is left (at most `DRAIN_LIMIT` seconds after it).
Engines whose entries did not change keep running (`Supervisor.update`). Settings bound at start-up (listen
address, log format and level, engine-wide limits) keep their running values and are reported as needing a
restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from aiohttp import web

from engines.supervisor.types import EngineSpec, EngineSupervisor

from .api.swap import preload_engine
from .config import ConfigError, load_config
from .config.auth import reload_refusal
from .config.model import Config, all_secrets
from .engines_bridge import engine_specs, make_supervisor
from .live_config import Holders, LiveConfig
from .logs import keep_out_of_logs
from .state import STATE, AppState
from .upstream.base import Upstream

log = logging.getLogger("agentgate.reload")

RESTART_ONLY_SERVER = ("host", "port", "log_format", "log_level", "idle_timeout")  # (keep-alive: the listener's)
RESTART_ONLY_ENGINES = ("max_loaded", "memory_budget_gb", "runtime_dir")
DRAIN_GRACE = 30.0  # seconds after a reload: requests that started before it and still run are logged
DRAIN_LIMIT = 3600.0  # the longest such requests keep the upstreams it retired open (a stuck one cannot pin them)
DRAIN_POLL = 0.25
ENGINE_DRAIN_TIMEOUT = 600.0  # changed engines finish their in-flight requests before they stop


@dataclass
class ReloadResult:
    ok: bool
    trigger: str  # "http" | "signal"
    source: str | None
    error: str | None = None
    status: int = 200  # for the HTTP endpoint: 400 invalid file, 409 nothing to reload from
    changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    restart_required: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"status": "reloaded", "config": self.source, "changes": self.changes,
                "restart_required": self.restart_required}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    out = {
        "added": sorted(n for n in new if n not in old),
        "removed": sorted(n for n in old if n not in new),
        "changed": sorted(n for n in new if n in old and new[n] != old[n]),
    }
    return {k: v for k, v in out.items() if v}


def _pin_restart_only(old: Config, new: Config, has_supervisor: bool, body_cap: int) -> tuple[Config, list[str]]:
    """Keep the running values of settings that only apply at start-up; name those the file changes."""
    notes: list[str] = []
    server_pins: dict[str, Any] = {}
    for name in RESTART_ONLY_SERVER:
        running, wanted = getattr(old.server, name), getattr(new.server, name)
        server_pins[name] = running
        if running != wanted:
            notes.append(f"server.{name} (running {running!r}, file {wanted!r})")
    if new.server.max_body_bytes > body_cap:  # the HTTP server's own cap was fixed at start-up
        server_pins["max_body_bytes"] = body_cap
        notes.append(f"server.max_body_mb above the start-up limit (running {body_cap / 2**20:g}, "
                     f"file {new.server.max_body_bytes / 2**20:g})")
    new = replace(new, server=replace(new.server, **server_pins))
    if has_supervisor:
        engine_pins = {}
        for name in RESTART_ONLY_ENGINES:
            running, wanted = getattr(old.engines, name), getattr(new.engines, name)
            engine_pins[name] = running
            if running != wanted:
                notes.append(f"engines.{name} (running {running!r}, file {wanted!r})")
        new = replace(new, engines=replace(new.engines, **engine_pins))
    return new, notes


def _server_changes(old: Config, new: Config) -> dict[str, list[str]]:
    """Names (never values) of the server settings a reload changed."""
    names = [f.name for f in fields(new.server) if getattr(old.server, f.name) != getattr(new.server, f.name)]
    return {"changed": names} if names else {}


def _secrets(config: Config) -> list[str]:
    found = [s for p in config.providers.values() for s in p.secrets]
    found += [k.key for k in config.server.api_keys]
    return sorted({s for s in found if s}, key=len, reverse=True)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        text = text.replace(s, "[redacted]")
    return text


async def _start_new(old: LiveConfig, new: LiveConfig) -> str | None:
    """Start the upstreams `new` adds; None, or why one could not start (those started are closed again)."""
    kept = {id(up) for up in old.upstreams.values()}
    started: list[Upstream] = []
    try:
        for up in new.upstreams.values():
            if id(up) not in kept:
                await up.start()
                started.append(up)
    except Exception as exc:
        for up in started:
            await up.close()
        log.exception("config reload: starting an upstream failed")
        return _scrub(f"an upstream could not be started: {exc}", _secrets(new.config))
    return None


class Reloader:
    """One per application: serialises reloads and retires what the new config no longer uses."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retiring: list[Upstream] = []
        self._replaced: list[Holders] = []  # the request counts of replaced runtimes that still had requests
        self._body_cap = app[STATE].runtime.config.server.max_body_bytes  # aiohttp's client_max_size, fixed

    @property
    def state(self) -> AppState:
        return self._app[STATE]

    async def reload(self, trigger: str) -> ReloadResult:
        async with self._lock:
            try:
                result = await self._reload(trigger)
            except Exception as exc:  # a config that loads but cannot be applied: keep serving the old one
                log.exception("config reload failed while applying the new config")
                secrets = _secrets(self.state.runtime.config)
                result = ReloadResult(False, trigger, self.state.config_path, status=400,
                                      error=_scrub(f"the new config could not be applied: {exc}", secrets))
        self.state.metrics.record_reload(result.ok)
        if result.ok:
            log.info("config reloaded", extra={"fields": {
                "trigger": trigger, "config": result.source, "changes": result.changes,
                **({"restart_required": result.restart_required} if result.restart_required else {})}})
            if result.restart_required:
                log.warning("config reload: not applied until restart: %s", "; ".join(result.restart_required))
        else:
            log.error("config reload rejected, still serving the previous config: %s", result.error,
                      extra={"fields": {"trigger": trigger, "config": result.source}})
        return result

    async def _reload(self, trigger: str) -> ReloadResult:
        state = self.state
        path = state.config_path
        old_rt = state.runtime
        if path is None:
            return ReloadResult(False, trigger, None, status=409,
                                error="the router was started without a config file; there is nothing to re-read")
        try:
            new_config = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            return ReloadResult(False, trigger, path, error=_scrub(str(exc), _secrets(old_rt.config)), status=400)
        if state.overrides:  # the command line's settings win over the file's, as they did at start-up
            new_config = replace(new_config, server=replace(new_config.server, **state.overrides))
        new_config, notes = _pin_restart_only(old_rt.config, new_config, state.supervisor is not None,
                                              self._body_cap)
        refusal = reload_refusal(old_rt.config.server, new_config.server)
        if refusal:
            return ReloadResult(False, trigger, path, status=400, error=f"{path}: {refusal}")
        if old_rt.config.server.api_keys and not new_config.server.api_keys:
            log.warning("config reload turns client authentication OFF (server.allow_unauthenticated: true)")
        wants_engines = any(m.engine is not None for m in new_config.models)
        specs: list[Any] = []
        if wants_engines or state.supervisor is not None:
            try:
                specs = engine_specs(new_config)
            except ValueError as exc:
                return ReloadResult(False, trigger, path, error=f"{path}: {exc}", status=400)
        supervisor = state.supervisor
        if supervisor is None and wants_engines:
            supervisor = make_supervisor(new_config, state.metrics)
        new_rt = LiveConfig.build(new_config, state.metrics, supervisor, previous=old_rt)
        failed = await _start_new(old_rt, new_rt)
        if failed:
            return ReloadResult(False, trigger, path, status=400, error=failed)
        changes = {
            "server": _server_changes(old_rt.config, new_config),
            "models": _diff({m.name: m for m in old_rt.config.models}, {m.name: m for m in new_config.models}),
            "providers": _diff({n: p for n, p in old_rt.config.providers.items() if p.type != "engine"},
                               {n: p for n, p in new_config.providers.items() if p.type != "engine"}),
        }
        if supervisor is not None:
            running = state.supervisor.specs() if state.supervisor is not None else {}
            changes["engines"] = self._engine_changes(running, specs)
        changes = {k: v for k, v in changes.items() if v}
        # The swap: handlers read `state.runtime` once, so requests in flight keep the old one.
        state.runtime = new_rt
        keep_out_of_logs([*all_secrets(old_rt.config), *all_secrets(new_config)])  # (the old: requests in flight)
        state.supervisor = supervisor
        if supervisor is not None:
            self._spawn(self._update_engines(supervisor, specs))
        retired = [up for up in old_rt.upstreams.values() if id(up) not in {id(u) for u in new_rt.upstreams.values()}]
        for up in retired:  # its successor (same name) owns the breaker series now
            up.breaker.on_change = None
        # a replaced runtime gets no new request: once its count is 0, it stays 0
        self._replaced = [h for h in self._replaced if h.count] + [old_rt.holders]
        if retired:
            self._retiring.extend(retired)
            self._spawn(self._retire(list(self._replaced), retired))
        del old_rt
        return ReloadResult(True, trigger, path, changes=changes, restart_required=notes)

    @staticmethod
    def _engine_changes(running: dict[str, EngineSpec], specs: list[EngineSpec]) -> dict[str, list[str]]:
        new = {s.name: s for s in specs}
        out = {
            "added": sorted(n for n in new if n not in running),
            "removed": sorted(n for n in running if n not in new),
            "restarted": sorted(n for n, s in new.items() if n in running
                                and s.launch_key() != running[n].launch_key()),
        }
        return {k: v for k, v in out.items() if v}

    async def _update_engines(self, supervisor: EngineSupervisor, specs: list[EngineSpec]) -> None:
        old = supervisor.specs()
        before = set(old)
        metrics = self.state.metrics
        for s in specs:
            if s.name not in before:
                metrics.track_engine(s.name)
        try:
            await supervisor.update(specs, drain_timeout=ENGINE_DRAIN_TIMEOUT)
        except RuntimeError as exc:  # closed while the reload ran: shutting down
            log.info("engine update skipped: %s", exc)
            return
        current = set(supervisor.specs())
        for name in before - current:
            metrics.forget_engine(name)
        # `preload: true` starts an engine with the router: one this reload added, changed (restarted once its
        # requests drained: `update` returns then) or newly marked preload starts now, unless already running
        states = supervisor.states()
        for s in specs:
            was = old.get(s.name)
            if s.preload and (was is None or was.launch_key() != s.launch_key() or not was.preload) \
                    and s.name in states and states[s.name].state not in ("starting", "ready"):
                self._spawn(preload_engine(self.state, s.name))

    async def _retire(self, holders: list[Holders], upstreams: list[Upstream]) -> None:
        """Close upstreams the new config dropped once none of them has a request outstanding or queued and no
        request holds a runtime they belong to (`holders`: the replaced one and those before it that still have
        requests): such a request may still turn to one (a slow primary then its fallback, a retry after its
        backoff). Requests that hold one past `DRAIN_LIMIT` seconds no longer keep them open."""
        loop = asyncio.get_running_loop()
        since = loop.time()
        noted = False
        while True:
            waited = loop.time() - since
            held = sum(h.count for h in holders) if waited < DRAIN_LIMIT else 0
            if not held and not any(up.outstanding > 0 or up.limiter.queued > 0 for up in upstreams):
                break
            if held and not noted and waited >= DRAIN_GRACE:
                noted = True
                log.info("config reload: %d requests that started before it still run; the providers it replaced "
                         "(%s) close once they end, at most %g s after the reload", held,
                         ", ".join(up.name for up in upstreams), DRAIN_LIMIT)
            await asyncio.sleep(DRAIN_POLL)
        await self._close_retired(upstreams)

    async def _close_retired(self, upstreams: list[Upstream]) -> None:
        live = self.state.runtime.upstreams
        for up in upstreams:
            if up in self._retiring:
                self._retiring.remove(up)
            try:
                await up.close()
            except Exception:  # a failing close must not keep the others open
                log.exception("closing retired upstream %s failed", up.name)
            if up.name not in live:
                self.state.metrics.forget_provider(up.name)
            log.info("upstream %s closed after reload", up.name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait for background work of earlier reloads (engine updates, upstream retirement)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """At shutdown: stop background work and close every retired upstream at once."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        retiring, self._retiring = self._retiring, []
        for up in retiring:
            try:
                await up.close()
            except Exception:
                log.exception("closing retired upstream %s failed", up.name)


RELOADER = web.AppKey("agentgate_reloader", Reloader)
