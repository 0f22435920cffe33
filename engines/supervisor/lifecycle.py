"""Engine lifecycle: start engines on demand, share one start between concurrent callers, count leases,
unload idle engines after their ttl, evict least-recently-used idle engines to respect `max_loaded` and
`memory_budget_gb`, detect crashes and restart with exponential backoff, hot-reload specs, and stop
everything gracefully (drain, SIGTERM, SIGKILL; whole process groups)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .health import wait_ready
from .launch import Launch, plan_launch
from .process import ChildProcess
from .types import (
    EVENT_KINDS,
    STATES,
    Endpoint,
    EngineEvent,
    EngineSpec,
    EngineState,
    EngineStatus,
    EngineUnavailable,
)
from .warden import Warden

__all__ = [
    "EVENT_KINDS",
    "STATES",
    "Endpoint",
    "EngineEvent",
    "EngineSpec",
    "EngineState",
    "EngineStatus",
    "EngineUnavailable",
    "Supervisor",
]

LOG = logging.getLogger("agentgate.engine")
_SLACK = 1.0
_EXITING = 0.05  # seconds a process that broke a connection is watched for its exit before it counts as alive
_ALIVE_POLL = 0.01
_MAX_ENUMERATED = 10  # loaded engines up to which `_helpers` weighs every set of them


@dataclass(eq=False)
class _Engine:
    """Mutable runtime record of one engine (one spec). Replaced by a fresh record when its spec changes."""

    spec: EngineSpec
    state: EngineState = EngineState.STOPPED
    proc: ChildProcess | None = None
    launch: Launch | None = None
    in_flight: int = 0
    waiters: int = 0  # callers waiting for this engine to become ready
    reserved: bool = False  # holds a slot / memory: from room granted until its process is gone
    crashed: bool = False
    lost: Endpoint | None = None  # the endpoint of the latest instance that crashed while serving
    last_used: float | None = None  # wall clock, for status
    starting_since: float = 0.0  # wall clock: when the latest start began, for status
    idle_since: float = 0.0  # loop clock: ready or last release; ttl and LRU order count from here
    ready_at: float | None = None  # loop clock
    load_seconds: float | None = None
    restarts: int = 0
    failures: int = 0  # consecutive crashes / failed starts, drives the restart backoff
    failed_at: float = 0.0
    failed_start: bool = False  # the latest failure was a start that never became ready (not a crash after one)
    last_error: str | None = None
    start_task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[None] | None = None
    teardown: asyncio.Task[None] | None = None  # background stop of a process whose start failed
    predecessor: asyncio.Future[Any] | None = None  # the stops of earlier instances of this name (see `_stops_of`)
    watchers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def idle(self) -> bool:
        return self.state == EngineState.READY and self.in_flight == 0 and self.waiters == 0


async def _all_done(futures: set[asyncio.Future[Any]]) -> None:
    await asyncio.wait(futures)


class _Lease(AbstractAsyncContextManager[Endpoint]):
    """`async with supervisor.lease(name) as endpoint:` — counts one in-flight use of a ready engine."""

    def __init__(self, supervisor: Supervisor, name: str) -> None:
        self._supervisor = supervisor
        self._name = name
        self._engine: _Engine | None = None

    async def __aenter__(self) -> Endpoint:
        if self._engine is not None:
            raise RuntimeError("lease is already held")
        engine = await self._supervisor._acquire(self._name)
        self._engine = engine
        assert engine.launch is not None
        return engine.launch.endpoint

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            self._supervisor._release(engine)


class Supervisor:
    def __init__(self, specs: Iterable[EngineSpec], *, max_loaded: int | None = None,
                 memory_budget_gb: float | None = None, runtime_dir: Path | None = None,
                 state_dir: Path | None = None,
                 python: str = sys.executable, on_event: Callable[[EngineEvent], None] | None = None,
                 stop_grace: float = 10.0, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 healthy_after: float = 60.0, check: Callable[[EngineSpec], str | None] | None = None) -> None:
        if max_loaded is not None and max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        if memory_budget_gb is not None and memory_budget_gb <= 0:
            raise ValueError("memory_budget_gb must be positive")
        self._records: dict[str, _Engine] = {}
        for spec in specs:
            if spec.name in self._records:
                raise ValueError(f"duplicate engine name {spec.name!r}")
            self._records[spec.name] = _Engine(spec)
        self._retiring: set[_Engine] = set()  # removed or replaced records still stopping
        self._wanting: set[_Engine] = set()  # starts waiting for a loaded engine to go idle (see `_acquire`)
        self._max_loaded = max_loaded
        self._budget = memory_budget_gb
        self._runtime_dir = Path(runtime_dir) if runtime_dir is not None else None
        self._owns_runtime_dir = False
        self._state_dir = Path(state_dir) if state_dir is not None else None  # MLX engines' KV cache lives here
        self._python = python
        self._on_event = on_event
        self._grace = stop_grace
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._healthy_after = healthy_after
        self._check = check  # why a spec cannot start here (a model that is not on this machine), or None
        self._changed = asyncio.Event()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._warden = Warden(grace=stop_grace)  # the router's own interpreter: `python` is for the workers

    # -- public API ---------------------------------------------------------------------------------------

    def lease(self, name: str) -> _Lease:
        """Async context manager yielding the engine's Endpoint once it is ready (starting it if needed).
        Raises EngineUnavailable with a reason when it cannot be made ready within `start_timeout`."""
        return _Lease(self, name)

    def states(self) -> dict[str, EngineStatus]:
        return {
            name: EngineStatus(
                state=rec.state, pid=rec.proc.pid if rec.proc is not None else None, in_flight=rec.in_flight,
                last_used=rec.last_used, load_seconds=rec.load_seconds, restarts=rec.restarts,
                last_error=rec.last_error,
                starting_since=rec.starting_since if rec.state == EngineState.STARTING else None,
            )
            for name, rec in self._records.items()
        }

    def endpoint(self, name: str) -> Endpoint | None:
        """The endpoint of engine `name` while it is ready (no lease taken), else None."""
        rec = self._records.get(name)
        if rec is None or rec.state != EngineState.READY or rec.launch is None:
            return None
        return rec.launch.endpoint

    def crashed(self, name: str) -> bool:
        """True when the engine's process died unexpectedly; stays true until its next start."""
        rec = self._records.get(name)
        return rec is not None and rec.crashed

    async def crashed_under(self, name: str, endpoint: Endpoint, timeout: float) -> bool:
        """Whether the instance of engine `name` that handed out `endpoint` died unexpectedly. A connection to an
        engine breaks the moment its process dies, while the exit reaches this supervisor a moment later (its
        watcher runs on the same event loop as the request that saw the break): so this waits, up to `timeout`
        seconds, for that instance to be settled one way or the other (its crash recorded, or it stopped, or it was
        replaced, or told to stop). An instance still running when `timeout` passes did not crash. Neither did one
        whose process is seen alive throughout `_EXITING` seconds: a live engine that drops a connection is an
        ordinary failure, answered at once rather than after `timeout`."""
        def instance() -> _Engine | None:
            return next((r for r in self._all_records() if r.launch is not None and r.launch.endpoint is endpoint),
                        None)

        def settled() -> bool:
            rec = instance()
            return rec is None or rec.lost is endpoint or rec.proc is None or rec.proc.stop_requested

        if timeout > 0:
            deadline = asyncio.get_running_loop().time() + timeout
            rec = instance()
            if rec is not None and not settled() and rec.proc is not None \
                    and await self._stays_alive(rec.proc, min(_EXITING, timeout)):
                return False
            await self._wait_until(settled, deadline - asyncio.get_running_loop().time())
        rec = instance()
        return rec is not None and rec.lost is endpoint

    @staticmethod
    async def _stays_alive(proc: ChildProcess, window: float) -> bool:
        """Whether `proc` is seen alive (see `ChildProcess.running`) from now until `window` seconds from now. A
        dying process closes its connections a moment before it becomes a zombie (the kernel closes its files
        first; an interpreter may close its sockets as it shuts down): the break can come first, so one look is
        not enough. False as soon as it is seen exited or exiting, or where that cannot be told."""
        loop = asyncio.get_running_loop()
        end = loop.time() + window
        while proc.running():
            if loop.time() >= end:
                return True
            await asyncio.sleep(min(_ALIVE_POLL, max(0.0, end - loop.time())))
        return False

    @property
    def closing(self) -> bool:
        """True once close() was called: new leases are refused."""
        return self._closing

    def specs(self) -> dict[str, EngineSpec]:
        return {name: rec.spec for name, rec in self._records.items()}

    async def stop(self, name: str, *, drain_timeout: float = 30.0) -> None:
        """Stop one engine after its in-flight leases finish (or `drain_timeout` passes). A later lease
        starts it again."""
        rec = self._records.get(name)
        if rec is None:
            raise KeyError(name)
        task = self._request_stop(rec, "stopped", "stop requested", drain_timeout)
        if task is not None:
            await asyncio.shield(task)

    async def update(self, specs: Iterable[EngineSpec], *, drain_timeout: float = 30.0) -> None:
        """Hot reload. Unchanged engines keep running; engines whose changes do not affect the process
        (ttl, start_timeout, memory_gb) take the new values in place; changed and removed engines are
        stopped once their in-flight leases drain. Returns when those stops are done."""
        if self._closing:
            raise RuntimeError("supervisor is closed")
        new: dict[str, EngineSpec] = {}
        for spec in specs:
            if spec.name in new:
                raise ValueError(f"duplicate engine name {spec.name!r}")
            new[spec.name] = spec
        stops: list[asyncio.Task[None]] = []
        for name, rec in list(self._records.items()):
            wanted = new.get(name)
            if wanted is not None and wanted.launch_key() == rec.spec.launch_key():
                rec.spec = wanted
                continue
            detail = "removed from configuration" if wanted is None else "configuration changed"
            task = self._retire(rec, detail, drain_timeout)
            if task is not None:
                stops.append(task)
            if wanted is None:
                del self._records[name]
            else:
                self._records[name] = _Engine(wanted, predecessor=self._stops_of(name, task, rec.predecessor))
                LOG.info("engine %s: configuration changed, restarting on next use", name,
                         extra={"engine": name})
        for name, spec in new.items():
            if name not in self._records:  # added, or added back while an earlier instance still drains
                self._records[name] = _Engine(spec, predecessor=self._stops_of(name))
        self._notify()
        if stops:
            await asyncio.gather(*(asyncio.shield(t) for t in stops))

    def _stops_of(self, name: str, *more: asyncio.Future[Any] | None) -> asyncio.Future[Any] | None:
        """What a new instance of `name` waits for before it starts: every unfinished stop of an earlier one (a
        removed or changed instance still draining, and what a replaced record that never started was itself
        waiting for). Two instances of one name never run at once: an MLX engine's socket path is its name's, and
        the old one removes it when it stops."""
        pending = {f for f in more if f is not None and not f.done()}
        for r in self._retiring:
            if r.name == name:
                pending.update(f for f in (r.stop_task, r.teardown, r.predecessor) if f is not None and not f.done())
        if len(pending) <= 1:
            return next(iter(pending), None)
        return self._spawn_task(_all_done(pending))

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Refuse new leases, wait up to `drain_timeout` for in-flight ones, then stop every engine
        (SIGTERM, then SIGKILL after the grace period). Idempotent."""
        if self._close_task is None:
            self._closing = True
            self._close_task = asyncio.ensure_future(self._close(drain_timeout))
        await asyncio.shield(self._close_task)

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- leases -------------------------------------------------------------------------------------------

    async def _acquire(self, name: str) -> _Engine:
        loop = asyncio.get_running_loop()
        rec = self._records.get(name)
        if rec is None:
            raise EngineUnavailable(name, "unknown engine")
        self._ensure_reaper()
        timeout = rec.spec.start_timeout
        deadline = loop.time() + timeout
        started = False  # this caller waited for the engine's start: it is served once it is ready
        while True:
            if self._closing:
                raise EngineUnavailable(name, "shutting down")
            rec = self._records.get(name)
            if rec is None:
                raise EngineUnavailable(name, "engine was removed from the configuration")
            if rec.state == EngineState.READY:
                swaps = self._swaps_waiting(rec)
                if started or not swaps:
                    rec.in_flight += 1
                    rec.last_used = time.time()
                    return rec
                # Another model waits for room: new requests here queue behind that swap (as in llama-swap), or
                # under steady load this engine would never go idle and the swap would wait out its start_timeout.
                # This engine drains, is swapped out, and is started again for them once room comes back.
                if not await self._wait_changed(deadline):
                    raise EngineUnavailable(name, f"waited {timeout:g}s behind the swap to "
                                                  f"{', '.join(sorted(swaps))} ({self._limits()})")
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EngineUnavailable(name, self._timeout_reason(rec, timeout))
            task = rec.start_task
            if task is None or task.done():
                task = rec.start_task = self._spawn_task(self._start(rec))
            rec.waiters += 1
            try:  # the start is bounded by start_timeout itself; the slack lets it report its own reason
                done, _ = await asyncio.wait({task}, timeout=remaining + _SLACK)
            finally:
                rec.waiters -= 1
                self._notify()
            if self._records.get(name) is not rec:
                continue  # replaced by update(): follow the new record
            if not done:
                raise EngineUnavailable(name, self._timeout_reason(rec, timeout))
            started = True
            if task.cancelled():
                raise EngineUnavailable(name, "shutting down" if self._closing else "stopped while starting")
            exc = task.exception()
            if exc is not None:
                reason = exc.reason if isinstance(exc, EngineUnavailable) else f"{type(exc).__name__}: {exc}"
                raise EngineUnavailable(name, reason) from None

    def _swaps_waiting(self, rec: _Engine) -> list[str]:
        """The other engines whose start waits for a loaded engine to go idle, while `rec` holds a slot. Only starts
        that a request still waits for count: one whose clients all left gives up (see `_make_room`), and holding
        requests back for it would only load it for nobody. Nor do starts that `rec` going away cannot help (see
        `_helpers`): holding its requests back would only stall them."""
        if not self._wanting or not rec.reserved:
            return []
        return [w.name for w in self._wanting if w is not rec and w.waiters > 0
                and rec in self._helpers(w, [r for r in self._all_records() if r is not w and r.reserved])]

    def _release(self, rec: _Engine) -> None:
        rec.in_flight -= 1
        rec.last_used = time.time()
        if rec.in_flight == 0:
            rec.idle_since = asyncio.get_running_loop().time()
            self._notify()

    @staticmethod
    def _timeout_reason(rec: _Engine, timeout: float) -> str:
        detail = f"; last error: {rec.last_error}" if rec.last_error else ""
        return f"not ready within {timeout:g}s (state {rec.state}){detail}"

    # -- starting -----------------------------------------------------------------------------------------

    async def _start(self, rec: _Engine) -> None:
        loop = asyncio.get_running_loop()
        spec = rec.spec
        deadline = loop.time() + spec.start_timeout
        previous_state = rec.state  # taken again after the waits: what an earlier instance's stop left
        reserved = False  # by this start: what it gives back when it fails
        try:
            for pending in (rec.predecessor, rec.stop_task, rec.teardown):
                if pending is not None and not pending.done():
                    await asyncio.wait({pending}, timeout=max(0.0, deadline - loop.time()))
                    if not pending.done():  # that process still runs: its slot and state stay as they are
                        raise EngineUnavailable(spec.name, "previous instance is still stopping")
            previous_state = rec.state
            refused = self._check(spec) if self._check is not None else None
            if refused:  # known before anything is stopped for it
                rec.last_error = refused
                raise EngineUnavailable(spec.name, refused)
            evict = not self._remembered_failure(rec)
            if not evict:  # refused at once when it would need room: no backoff to sit out first
                self._room_without_eviction(rec)
            await self._backoff(rec, deadline)
            rec.state, rec.starting_since = EngineState.STARTING, time.time()
            await self._make_room(rec, deadline, evict=evict)
            reserved = True
            launch = plan_launch(spec, runtime_dir=self._ensure_runtime_dir(), python=self._python,
                                 state_dir=self._state_dir)
        except BaseException as exc:
            if reserved:
                rec.reserved = False
            if rec.state == EngineState.STARTING:
                rec.state = previous_state if previous_state != EngineState.STOPPING else EngineState.STOPPED
            self._notify()
            if isinstance(exc, ValueError):
                raise EngineUnavailable(spec.name, str(exc)) from None
            raise
        await self._launch(rec, launch, deadline)

    async def _backoff(self, rec: _Engine, deadline: float) -> None:
        if not rec.failures:
            return
        loop = asyncio.get_running_loop()
        delay = min(self._backoff_base * 2 ** (rec.failures - 1), self._backoff_cap)
        resume = rec.failed_at + delay
        if resume > deadline:
            raise EngineUnavailable(rec.name, f"restart backoff of {delay:g}s after a failure exceeds "
                                              f"start_timeout; last error: {rec.last_error}")
        if resume > loop.time():
            LOG.info("engine %s: restarting in %.1fs (failure %d)", rec.name, resume - loop.time(),
                     rec.failures, extra={"engine": rec.name})
            await asyncio.sleep(resume - loop.time())

    def _remembered_failure(self, rec: _Engine) -> bool:
        """Whether `rec`'s latest start failed less than `backoff_cap` seconds ago. Such an engine (bad
        `engine_args`, a model that cannot load) would most likely fail again: it does not stop a working engine
        for another try, and every retry of a client would otherwise evict the loaded model for nothing."""
        return (rec.failed_start and rec.failures > 0
                and asyncio.get_running_loop().time() < rec.failed_at + self._backoff_cap)

    def _room_without_eviction(self, rec: _Engine) -> None:
        """Raise EngineUnavailable unless `rec` fits beside the engines loaded now."""
        others = [r for r in self._all_records() if r is not rec and r.reserved]
        if not self._fits(rec, others):
            loaded = ", ".join(sorted(r.name for r in others)) or "none"
            raise EngineUnavailable(rec.name, f"its last start failed ({rec.last_error}); it does not evict a "
                                              f"loaded engine for another try within {self._backoff_cap:g}s of "
                                              f"that ({self._limits()}, loaded: {loaded})")

    async def _make_room(self, rec: _Engine, deadline: float, *, evict: bool = True) -> None:
        """Reserve a slot (and memory) for `rec`, evicting least-recently-used idle engines, or waiting for
        one to become idle, until `deadline`. Without `evict`, only the room there is now will do."""
        need = rec.spec.memory_gb or 0.0
        if self._budget is not None and need > self._budget:
            raise EngineUnavailable(rec.name, f"needs {need:g} GB, more than memory_budget_gb "
                                              f"({self._budget:g} GB)")
        try:
            while True:
                if self._closing:
                    raise EngineUnavailable(rec.name, "shutting down")
                others = [r for r in self._all_records() if r is not rec and r.reserved]
                if self._fits(rec, others):
                    rec.reserved = True
                    return
                if not evict:
                    self._room_without_eviction(rec)
                if rec.waiters == 0:  # every request for it went away: nothing is evicted for nobody
                    raise EngineUnavailable(rec.name, "no request waits for it any more")
                victims = self._victims(rec, others)
                if victims:
                    victim = victims[0]
                    task = self._request_stop(victim, "evicted", f"making room for {rec.name}")
                    if task is not None:
                        await asyncio.shield(task)
                    continue
                # New leases on the loaded engines now wait (see `_swaps_waiting`): they drain and go idle. The
                # start stays in `_wanting` until it leaves: a wake-up that finds no room changes nothing, so it
                # must not notify (two waiting starts would otherwise wake each other without end).
                self._wanting.add(rec)
                if not await self._wait_changed(deadline):
                    busy = ", ".join(sorted(r.name for r in others)) or "none"
                    raise EngineUnavailable(rec.name, f"no room to load it: {self._limits()} and no loaded "
                                                      f"engine became idle (loaded: {busy})")
        finally:
            if rec in self._wanting:  # the leases queued behind this start go on
                self._wanting.discard(rec)
                self._notify()

    def _victims(self, rec: _Engine, others: list[_Engine]) -> list[_Engine]:
        """The idle engines to evict for `rec`, least recently used first: a smallest set of them whose eviction
        makes room (each is needed), preferring the least recently used; none while the idle engines together
        cannot make room, so that nothing is evicted for a start that would still not fit (the busy ones it needs
        drain first: their new requests wait, see `_swaps_waiting`)."""
        idle = sorted((r for r in others if r.idle), key=lambda r: r.idle_since)
        if not self._fits(rec, [r for r in others if not r.idle]):
            return []
        chosen = idle
        for r in reversed(idle):  # the most recently used first: drop each one the others can do without
            rest = [c for c in chosen if c is not r]
            if self._fits(rec, [o for o in others if o not in rest]):
                chosen = rest
        return chosen

    def _helpers(self, rec: _Engine, others: list[_Engine]) -> set[_Engine]:
        """The engines of `others` (those holding room) whose going away can help `rec` fit: each belongs to a
        smallest set whose removal makes room, one it could not do without. With a memory budget, an engine too
        small to matter beside the one that must go anyway is not among them (its requests need not wait, nor
        need it be evicted). With more engines than is cheap to enumerate, every one counts."""
        n = len(others)
        if n > _MAX_ENUMERATED:
            return set(others)
        need = 0 if self._max_loaded is None else n + 1 - self._max_loaded  # engines to remove, at least
        gb = [r.spec.memory_gb or 0.0 for r in others]
        free = -1.0 if self._budget is None else sum(gb) + (rec.spec.memory_gb or 0.0) - self._budget - 1e-9
        enough = [bin(mask).count("1") >= need and sum(g for i, g in enumerate(gb) if mask >> i & 1) >= free
                  for mask in range(1 << n)]
        found: set[int] = set()
        for mask in range(1 << n):
            if enough[mask]:
                found.update(i for i in range(n) if mask >> i & 1 and not enough[mask ^ (1 << i)])
        return {others[i] for i in found}

    def _fits(self, rec: _Engine, others: list[_Engine]) -> bool:
        if self._max_loaded is not None and len(others) + 1 > self._max_loaded:
            return False
        if self._budget is not None:
            used = sum(r.spec.memory_gb or 0.0 for r in others)
            if used + (rec.spec.memory_gb or 0.0) > self._budget + 1e-9:
                return False
        return True

    def _limits(self) -> str:
        parts = []
        if self._max_loaded is not None:
            parts.append(f"max_loaded={self._max_loaded}")
        if self._budget is not None:
            parts.append(f"memory_budget_gb={self._budget:g}")
        return ", ".join(parts)

    async def _launch(self, rec: _Engine, launch: Launch, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        spec = rec.spec
        if launch.socket_path is not None:
            launch.socket_path.unlink(missing_ok=True)
        began = loop.time()
        try:
            await self._warden.start()
            if self._owns_runtime_dir and self._runtime_dir is not None:
                self._warden.remove_on_exit(str(self._runtime_dir))
            proc = await ChildProcess.spawn(spec.name, launch.argv, env=launch.env, warden=self._warden)
        except BaseException as exc:
            rec.reserved = False
            if isinstance(exc, asyncio.CancelledError):
                rec.state = EngineState.STOPPED
                self._notify()
                raise
            reason = f"cannot start {launch.argv[0]!r}: {exc}"
            self._record_failure(rec, reason)
            rec.failed_start = True
            LOG.error("engine %s: %s", spec.name, reason, extra={"engine": spec.name})
            self._notify()
            raise EngineUnavailable(spec.name, reason) from None
        if rec.failures:
            rec.restarts += 1
        rec.proc, rec.launch, rec.crashed, rec.ready_at = proc, launch, False, None
        watcher = self._spawn_task(self._watch(rec, proc))
        rec.watchers.add(watcher)
        watcher.add_done_callback(rec.watchers.discard)
        LOG.info("engine %s: starting (pid %d)", spec.name, proc.pid, extra={"engine": spec.name})
        self._emit(EngineEvent(spec.name, "starting", detail=f"pid {proc.pid}"))
        try:
            readiness = await wait_ready(launch.health_url, unix_socket=launch.endpoint.unix_socket,
                                         exited=proc.exited, deadline=deadline, wrote=proc.wrote)
        except asyncio.CancelledError:
            await self._abort_start(rec, proc, "stopped", "stopped while starting", failed=False)
            raise
        except Exception as exc:
            reason = f"readiness check failed: {type(exc).__name__}: {exc}"
            await self._abort_start(rec, proc, "stopped", reason, failed=True)
            raise EngineUnavailable(spec.name, reason) from None
        if readiness.outcome == "exited":
            reason = f"exited while starting: {proc.exit_reason()}"
            rec.crashed = True
            await self._abort_start(rec, proc, "crashed", reason, failed=True)
            raise EngineUnavailable(spec.name, reason)
        if readiness.outcome == "timeout":
            output = proc.cause()
            reason = (f"not ready within {spec.start_timeout:g}s ({readiness.note})"
                      + (f"; last output: {output}" if output else ""))
            await self._abort_start(rec, proc, "stopped", reason, failed=True)
            raise EngineUnavailable(spec.name, reason)
        now = loop.time()
        rec.state = EngineState.READY
        rec.failed_start = False
        rec.ready_at = rec.idle_since = now
        rec.load_seconds = now - began
        rec.last_used = time.time()
        LOG.info("engine %s: ready in %.2fs", spec.name, rec.load_seconds, extra={"engine": spec.name})
        self._emit(EngineEvent(spec.name, "ready", load_seconds=rec.load_seconds, detail=f"pid {proc.pid}"))
        self._notify()

    async def _abort_start(self, rec: _Engine, proc: ChildProcess, kind: str, reason: str, *,
                           failed: bool) -> None:
        """Tear down a process that did not become ready; `kind` is the event to emit. A failed start is
        reported at once while its process is stopped in the background (the next start waits for that);
        a cancelled start (stop, update, close) returns once the process is gone."""
        proc.stop_requested = True
        if failed:
            self._record_failure(rec, reason)
            rec.failed_start = True
            LOG.error("engine %s: %s", rec.name, reason, extra={"engine": rec.name})
        else:
            rec.state = EngineState.STOPPING
            LOG.info("engine %s: %s", rec.name, reason, extra={"engine": rec.name})
        self._detach(rec, proc)
        self._emit(EngineEvent(rec.name, kind, detail=reason))
        teardown = rec.teardown = self._spawn_task(self._teardown(rec, proc))
        self._notify()
        if failed:
            return
        try:
            await asyncio.shield(teardown)
        finally:
            rec.state = EngineState.STOPPED
            self._notify()

    async def _teardown(self, rec: _Engine, proc: ChildProcess) -> None:
        await proc.stop(self._grace)
        self._release_slot(rec)
        self._notify()

    def _record_failure(self, rec: _Engine, reason: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if rec.ready_at is not None and now - rec.ready_at >= self._healthy_after:
            rec.failures = 0
        rec.failures += 1
        rec.failed_at = now
        rec.last_error = reason
        rec.state = EngineState.FAILED

    # -- crashes ------------------------------------------------------------------------------------------

    async def _watch(self, rec: _Engine, proc: ChildProcess) -> None:
        await proc.wait()
        if proc.stop_requested or rec.proc is not proc or rec.state not in (EngineState.READY, EngineState.STOPPING):
            return  # an intentional stop, or a start in progress (the start handles its own failure)
        reason = proc.exit_reason()
        rec.crashed = True
        rec.lost = rec.launch.endpoint if rec.launch is not None else None
        self._record_failure(rec, reason)
        rec.failed_start = False
        self._detach(rec, proc)
        proc.reap()  # sweep what is left of its process group, close its pipes
        self._release_slot(rec)
        LOG.error("engine %s: crashed: %s", rec.name, reason, extra={"engine": rec.name})
        self._emit(EngineEvent(rec.name, "crashed", detail=reason))
        self._notify()

    @staticmethod
    def _detach(rec: _Engine, proc: ChildProcess) -> None:
        if rec.proc is proc:
            rec.proc = None
            rec.ready_at = None

    @staticmethod
    def _release_slot(rec: _Engine) -> None:
        """The process is gone: free its slot and memory, remove its socket."""
        rec.reserved = False
        if rec.launch is not None and rec.launch.socket_path is not None:
            rec.launch.socket_path.unlink(missing_ok=True)

    # -- stopping -----------------------------------------------------------------------------------------

    def _request_stop(self, rec: _Engine, kind: str, detail: str,
                      drain_timeout: float | None = None) -> asyncio.Task[None] | None:
        """Start (or join) stopping `rec`; None when nothing is running or starting."""
        if rec.stop_task is not None and not rec.stop_task.done():
            return rec.stop_task
        start = rec.start_task if rec.start_task is not None and not rec.start_task.done() else None
        if rec.proc is None and start is None:
            return rec.teardown if rec.teardown is not None and not rec.teardown.done() else None
        if rec.state == EngineState.READY:
            rec.state = EngineState.STOPPING
        rec.stop_task = self._spawn_task(self._stop(rec, start, kind, detail, drain_timeout))
        if start is not None:
            # This stop cancels that start: a lease asked for from now on does not join it, but starts the engine
            # again once the stop is done (`_start` waits for it), as a lease does while a ready engine drains.
            rec.start_task = None
        return rec.stop_task

    async def _stop(self, rec: _Engine, start: asyncio.Task[None] | None, kind: str, detail: str,
                    drain_timeout: float | None) -> None:
        drained = not drain_timeout or await self._wait_until(lambda: rec.in_flight == 0, drain_timeout)
        if not drained:
            LOG.warning("engine %s: %d request(s) still in flight after %gs, stopping anyway", rec.name,
                        rec.in_flight, drain_timeout, extra={"engine": rec.name})
        if start is not None:
            start.cancel()
            await asyncio.wait({start})
        proc = rec.proc
        if proc is not None:
            rec.state = EngineState.STOPPING
            loop = asyncio.get_running_loop()
            healthy = rec.ready_at is not None and loop.time() - rec.ready_at >= self._healthy_after
            await proc.stop(self._grace)
            if healthy:
                rec.failures = 0
            self._detach(rec, proc)
            self._release_slot(rec)
            if rec.state == EngineState.STOPPING:
                rec.state = EngineState.STOPPED
            LOG.info("engine %s: %s (%s)", rec.name, kind.replace("_", " "), detail,
                     extra={"engine": rec.name})
            self._emit(EngineEvent(rec.name, kind, detail=detail))
        elif rec.state == EngineState.STOPPING:
            rec.state = EngineState.STOPPED
        self._notify()

    def _retire(self, rec: _Engine, detail: str, drain_timeout: float) -> asyncio.Task[None] | None:
        task = self._request_stop(rec, "stopped", detail, drain_timeout)
        if task is not None:
            self._retiring.add(rec)
            task.add_done_callback(lambda _t: self._retiring.discard(rec))
        return task

    async def _close(self, drain_timeout: float) -> None:
        self._closing = True
        self._notify()
        records = self._all_records()
        for rec in records:  # nobody can use an engine that is still starting: stop those right away
            if rec.start_task is not None and not rec.start_task.done():
                self._request_stop(rec, "stopped", "shutdown")
        drained = await self._wait_until(lambda: all(r.in_flight == 0 for r in self._all_records()),
                                         drain_timeout)
        if not drained:
            LOG.warning("shutting down with requests still in flight after %gs", drain_timeout)
        stops = [self._request_stop(rec, "stopped", "shutdown") for rec in self._all_records()]
        await asyncio.gather(*(t for t in stops if t is not None), return_exceptions=True)
        if self._reaper is not None:
            self._reaper.cancel()
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        await asyncio.gather(*pending, return_exceptions=True)
        await self._warden.close()
        if self._owns_runtime_dir and self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)

    # -- idle unload --------------------------------------------------------------------------------------

    def _ensure_reaper(self) -> None:
        if self._reaper is None and not self._closing:
            self._reaper = self._spawn_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            now = loop.time()
            wake: float | None = None
            for rec in list(self._records.values()):
                ttl = rec.spec.ttl
                if not ttl or not rec.idle:
                    continue
                expiry = rec.idle_since + ttl
                if expiry > now:
                    wake = expiry if wake is None else min(wake, expiry)
                    continue
                try:
                    self._request_stop(rec, "unloaded_idle", f"idle for {ttl:g}s")
                except Exception:  # never let one engine end idle unloading for all of them
                    LOG.exception("engine %s: idle unload failed", rec.name, extra={"engine": rec.name})
            await self._wait_changed(wake)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _all_records(self) -> list[_Engine]:
        return [*self._records.values(), *self._retiring]

    def _notify(self) -> None:
        """Wake everything waiting for a state change (room, drain, idle timers)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_changed(self, deadline: float | None) -> bool:
        """Wait for the next `_notify` until `deadline` (loop clock; None: no limit). False when the deadline came
        first. Not `asyncio.wait_for`: on Python 3.10 and 3.11 that returns normally when it is cancelled in the loop
        turn its inner wait finished, and the cancel is lost; `_stop` cancels a start right after `update()`
        notifies, and such a start went on to launch a configuration that was already replaced."""
        changed = self._changed
        remaining = None
        if deadline is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
        waiter = asyncio.ensure_future(changed.wait())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
        finally:
            waiter.cancel()
        return bool(done)

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if not await self._wait_changed(deadline):
                return predicate()
        return True

    def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # start failures reach their waiters as EngineUnavailable; others are bugs
        if exc is not None and not isinstance(exc, EngineUnavailable):
            LOG.error("engine supervisor task failed", exc_info=exc)

    def _ensure_runtime_dir(self) -> Path:
        if self._runtime_dir is None:
            base = "/tmp" if Path("/tmp").is_dir() else None  # short paths: socket addresses are limited
            self._runtime_dir = Path(tempfile.mkdtemp(prefix="agentgate-", dir=base))
            self._owns_runtime_dir = True
        else:
            self._runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self._runtime_dir

    def _emit(self, event: EngineEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            LOG.exception("engine event handler failed for %s", event)

