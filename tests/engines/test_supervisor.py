"""Engine lifecycle with real child processes: on-demand start, leases, idle unload, LRU eviction, memory
budget, crash detection and restart, start failures, shared starts, graceful close, hot reload."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shlex
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

try:  # the HTTP library under the openai client (httpx, or httpx2 in newer releases)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from engines.supervisor import health
from engines.supervisor.lifecycle import Endpoint, EngineEvent, EngineSpec, EngineUnavailable, Supervisor
from tests.waiting import wait_until

FAKE = Path(__file__).with_name("fake_server.py")
BOUND = 30.0  # generous bound for any awaited condition


def fake(name: str, *extra: str, **kw: Any) -> EngineSpec:
    return EngineSpec(name=name, kind="command", command=[sys.executable, str(FAKE), "--port", "${PORT}", *extra],
                      **kw)


async def until(predicate: Callable[[], bool]) -> None:
    await wait_until(predicate, timeout=BOUND)


def gone(pid: int) -> bool:
    """The process no longer runs (reaped, or a zombie left for an init that does not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def client(ep: Endpoint) -> openai.AsyncOpenAI:
    transport = httpx.AsyncHTTPTransport(uds=ep.unix_socket) if ep.unix_socket else None
    return openai.AsyncOpenAI(base_url=ep.base_url, api_key="unused", max_retries=0,
                              http_client=httpx.AsyncClient(transport=transport, timeout=60))


async def chat(ep: Endpoint, text: str, model: str = "m") -> str | None:
    async with client(ep) as c:
        resp = await c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
        return resp.choices[0].message.content


Make = Callable[..., tuple[Supervisor, list[EngineEvent]]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[Supervisor] = []

    def factory(specs: list[EngineSpec], **kw: Any) -> tuple[Supervisor, list[EngineEvent]]:
        events: list[EngineEvent] = []
        sup = Supervisor(specs, on_event=events.append, **kw)
        made.append(sup)
        return sup, events

    yield factory
    for sup in made:
        await sup.close(drain_timeout=5)


def kinds(events: list[EngineEvent], name: str) -> list[str]:
    return [e.kind for e in events if e.name == name]


async def test_command_engine_starts_on_demand_serves_and_stops(make: Make, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="agentgate.engine")
    command = shlex.join([sys.executable, str(FAKE)]) + " --port ${PORT} --model ${MODEL}"
    sup, events = make([EngineSpec(name="echo", kind="command", command=command, model="echo-model")])
    assert sup.states()["echo"].state == "stopped" and sup.states()["echo"].pid is None

    async with sup.lease("echo") as ep:
        assert ep.unix_socket is None and ep.base_url.startswith("http://127.0.0.1:") and ep.base_url.endswith("/v1")
        status = sup.states()["echo"]
        assert (status.state, status.in_flight) == ("ready", 1)
        assert status.pid is not None and status.load_seconds is not None and status.load_seconds > 0
        assert await chat(ep, "hello") == "hello"
        async with client(ep) as c:
            assert [m.id for m in (await c.models.list()).data] == ["echo-model"]  # ${MODEL} substituted
    pid = status.pid
    assert sup.states()["echo"].in_flight == 0
    assert sup.states()["echo"].last_used is not None
    assert any("engine echo: fake server loading on port" in r.getMessage() for r in caplog.records)

    await sup.stop("echo")
    assert sup.states()["echo"].state == "stopped" and sup.states()["echo"].pid is None
    assert gone(pid)
    assert kinds(events, "echo") == ["starting", "ready", "stopped"]
    assert events[1].load_seconds is not None and not sup.crashed("echo")

    with pytest.raises(EngineUnavailable) as err:
        async with sup.lease("nope"):
            pass
    assert err.value.reason == "unknown engine"


async def test_idle_ttl_unloads_only_engines_without_leases(make: Make):
    sup, events = make([fake("held", ttl=0.3), fake("idle", ttl=0.3)])
    async with sup.lease("held"):
        async with sup.lease("idle"):
            pass
        pid = sup.states()["idle"].pid
        assert pid is not None
        await until(lambda: sup.states()["idle"].state == "stopped")
        assert gone(pid)
        assert kinds(events, "idle")[-1] == "unloaded_idle"
        assert sup.states()["held"].state == "ready"  # in use: its ttl has not started
    await until(lambda: sup.states()["held"].state == "stopped")
    assert kinds(events, "held")[-1] == "unloaded_idle"


async def test_max_loaded_swaps_least_recently_used_idle_engine(make: Make):
    sup, events = make([fake("a"), fake("b", start_timeout=20)], max_loaded=1)
    async with sup.lease("a") as ep:
        assert await chat(ep, "a") == "a"
    a_pid = sup.states()["a"].pid
    async with sup.lease("b") as ep:
        assert await chat(ep, "b") == "b"
        assert sup.states()["a"].state == "stopped" and gone(a_pid)  # type: ignore[arg-type]
        assert kinds(events, "a")[-1] == "evicted"

        # b is busy: a lease on a waits for room instead of evicting it
        lease_a = sup.lease("a")
        waiting = asyncio.ensure_future(lease_a.__aenter__())
        await until(lambda: sup.states()["a"].state == "starting")
        assert sup.states()["a"].pid is None and sup.states()["b"].state == "ready"
        assert not waiting.done()
    ep_a = await asyncio.wait_for(waiting, BOUND)
    assert await chat(ep_a, "again") == "again"
    assert sup.states()["b"].state == "stopped" and kinds(events, "b")[-1] == "evicted"
    await lease_a.__aexit__(None, None, None)
    assert sup.states()["a"].in_flight == 0


async def test_waiting_for_room_is_bounded_by_start_timeout(make: Make):
    sup, _ = make([fake("a"), fake("b", start_timeout=0.5)], max_loaded=1)
    async with sup.lease("a"):
        with pytest.raises(EngineUnavailable) as err:
            async with sup.lease("b"):
                pass
        assert "max_loaded=1" in err.value.reason and "a" in err.value.reason
        assert sup.states()["a"].state == "ready" and sup.states()["b"].state == "stopped"


async def test_an_engine_that_cannot_start_here_never_evicts_a_loaded_one(make: Make):
    sup, events = make([fake("a"), fake("gone", start_timeout=5)], max_loaded=1,
                       check=lambda spec: "model path 'x' does not exist" if spec.name == "gone" else None)
    async with sup.lease("a"):
        pass
    pid = sup.states()["a"].pid
    for _ in range(2):
        with pytest.raises(EngineUnavailable) as err:
            async with sup.lease("gone"):
                pass
        assert err.value.reason == "model path 'x' does not exist"
    status = sup.states()["a"]
    assert (status.state, status.pid) == ("ready", pid) and kinds(events, "a") == ["starting", "ready"]
    assert kinds(events, "gone") == [] and sup.states()["gone"].last_error == "model path 'x' does not exist"


async def test_an_engine_whose_start_failed_does_not_evict_again_for_a_while(make: Make):
    # backoff_cap (how long a failed start is remembered) well above what restarting a takes on a loaded machine
    sup, events = make([fake("a"), fake("bad", "--exit-code", "3", start_timeout=20)], max_loaded=1,
                       backoff_base=0.05, backoff_cap=60.0)
    async with sup.lease("a"):
        pass
    with pytest.raises(EngineUnavailable):  # its first try: nothing says it cannot start, so a makes room
        async with sup.lease("bad"):
            pass
    assert kinds(events, "a")[-1] == "evicted"
    async with sup.lease("a"):
        pass
    pid = sup.states()["a"].pid
    with pytest.raises(EngineUnavailable) as err:  # a retry soon after: refused at once, a stays loaded
        async with sup.lease("bad"):
            pass
    assert "last start failed" in err.value.reason and "exit" in err.value.reason
    assert sup.states()["a"].state == "ready" and sup.states()["a"].pid == pid
    assert kinds(events, "a") == ["starting", "ready", "evicted", "starting", "ready"]
    assert kinds(events, "bad") == ["starting", "crashed"]
    sup._records["bad"].failed_at -= 60.0  # past backoff_cap: it may try again, making room as any engine does
    with pytest.raises(EngineUnavailable):
        async with sup.lease("bad"):
            pass
    assert kinds(events, "a")[-1] == "evicted" and kinds(events, "bad") == ["starting", "crashed"] * 2


async def test_steady_load_on_the_loaded_engine_does_not_starve_a_swap(make: Make):
    """max_loaded 1 and two overlapping request loops on r, so that r is never idle: a lease on a gets its room
    (new leases on r wait behind it while r drains), and the loops go on once r is back."""
    sup, events = make([fake("r"), fake("a", start_timeout=5)], max_loaded=1)
    served = {"r": 0}
    stop = asyncio.Event()

    async def loop(offset: float) -> None:
        await asyncio.sleep(offset)
        while not stop.is_set():
            async with sup.lease("r"):
                await asyncio.sleep(0.1)  # a request's work: the two loops overlap
            served["r"] += 1

    async with sup.lease("r"):
        pass
    loops = [asyncio.ensure_future(loop(offset)) for offset in (0.0, 0.05)]
    try:
        await until(lambda: served["r"] >= 4)
        async with sup.lease("a") as ep:  # before: no room for the whole start_timeout
            assert await chat(ep, "a") == "a"
        assert kinds(events, "r")[-1] == "evicted"
        before = served["r"]
        await until(lambda: served["r"] >= before + 4)  # r restarted for the loops that waited
        assert kinds(events, "a")[-1] == "evicted" and sup.states()["r"].state == "ready"
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), BOUND)


def count_notifies(sup: Supervisor) -> dict[str, int]:
    """Count the supervisor's state-change notifications (each wakes every waiter)."""
    calls = {"n": 0}
    notify = sup._notify

    def counting() -> None:
        calls["n"] += 1
        notify()

    sup._notify = counting  # type: ignore[method-assign]
    return calls


async def test_two_starts_waiting_for_room_sleep_while_nothing_changes(make: Make):
    """max_loaded 1 and a busy: b and c both wait for room. Each wake-up that found no room used to notify the
    other, which did the same: the loop spun at full CPU until start_timeout."""
    sup, _ = make([fake("a"), fake("b", start_timeout=5), fake("c", start_timeout=5)], max_loaded=1)
    calls = count_notifies(sup)
    async with sup.lease("a"):
        waits = [asyncio.ensure_future(sup.lease(n).__aenter__()) for n in ("b", "c")]
        await until(lambda: all(sup.states()[n].state == "starting" for n in ("b", "c")))
        await asyncio.sleep(0.1)
        sup._notify()  # one state change elsewhere wakes both
        before = calls["n"]
        await asyncio.sleep(0.5)
        woken = calls["n"] - before
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    assert woken < 10, f"{woken} notifications in 0.5 s while nothing changed"  # a spinning loop makes thousands


async def test_a_swap_whose_requests_went_away_holds_nothing_back(make: Make):
    """max_loaded 1 and a busy: the only request for b gives up while b waits for room. New requests for a were
    held back behind that swap, and once a went idle it was evicted to load b for nobody."""
    sup, events = make([fake("a", start_timeout=10), fake("b", start_timeout=10)], max_loaded=1)
    async with sup.lease("a"):
        b = asyncio.ensure_future(sup.lease("b").__aenter__())
        await until(lambda: sup.states()["b"].state == "starting")
        await asyncio.sleep(0.1)
        b.cancel()  # its client disconnected
        await asyncio.gather(b, return_exceptions=True)

        async def use_a() -> str | None:
            async with sup.lease("a") as ep:
                return await chat(ep, "a")

        assert await asyncio.wait_for(use_a(), 2) == "a"  # served at once, not queued behind b
        assert sup.states()["b"].state == "stopped"
    await asyncio.sleep(0.5)  # a idle: b is not loaded for nobody
    assert kinds(events, "a") == ["starting", "ready"] and kinds(events, "b") == []


async def test_memory_budget_evicts_lru_until_it_fits(make: Make):
    specs = [fake(n, memory_gb=4) for n in ("a", "b", "c")] + [fake("huge", memory_gb=12)]
    sup, events = make(specs, memory_budget_gb=10)
    for name in ("a", "b"):  # both fit (8 of 10 GB); a is the least recently used
        async with sup.lease(name):
            pass
    async with sup.lease("c"):
        states = sup.states()
        assert (states["a"].state, states["b"].state, states["c"].state) == ("stopped", "ready", "ready")
    evicted = [e for e in events if e.kind == "evicted"]
    assert [(e.name, e.detail) for e in evicted] == [("a", "making room for c")]
    with pytest.raises(EngineUnavailable) as err:
        async with sup.lease("huge"):
            pass
    assert "memory_budget_gb" in err.value.reason
    assert kinds(events, "huge") == []


async def test_memory_budget_drains_and_evicts_only_engines_that_can_make_room(make: Make):
    """memory_budget_gb 10: big (8 GB) serves a long request, small (1 GB) a steady load, and w (4 GB) waits for
    room, which only big going away can make (8 + 4 > 10). Every idle moment of small evicted it for nothing, and
    its requests were held back behind w; now small serves on, and w starts once big's request ends."""
    sup, events = make([fake("big", memory_gb=8), fake("small", memory_gb=1), fake("w", memory_gb=4, start_timeout=8)],
                       memory_budget_gb=10)
    stop = asyncio.Event()
    served = {"n": 0}
    each = [0, 0]  # leases each of the two loops got: a loop held back behind w stops counting

    async def loop(i: int, offset: float) -> None:
        await asyncio.sleep(offset)
        while not stop.is_set():
            async with sup.lease("small"):
                await asyncio.sleep(0.05)
            served["n"] += 1
            each[i] += 1
            await asyncio.sleep(0.02)  # small goes idle now and then

    big = sup.lease("big")
    await big.__aenter__()
    async with sup.lease("small"):
        pass
    loops = [asyncio.ensure_future(loop(i, offset)) for i, offset in enumerate((0.0, 0.03))]
    try:
        await until(lambda: served["n"] >= 4)
        w = sup.lease("w")
        waiting = asyncio.ensure_future(w.__aenter__())
        await until(lambda: sup.states()["w"].state == "starting")
        before, before_each = served["n"], list(each)
        await asyncio.sleep(1.5)
        assert kinds(events, "small") == ["starting", "ready"], events
        assert served["n"] >= before + 5 and not waiting.done()
        assert all(after >= was + 2 for after, was in zip(each, before_each, strict=True)), (before_each, each)
        await big.__aexit__(None, None, None)
        await asyncio.wait_for(waiting, BOUND)
        await w.__aexit__(None, None, None)
        assert kinds(events, "big")[-1] == "evicted" and kinds(events, "small") == ["starting", "ready"]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), BOUND)


async def test_crash_is_detected_and_next_lease_restarts(make: Make):
    sup, events = make([fake("crashy")], backoff_base=0.2)
    async with sup.lease("crashy") as ep:
        assert await chat(ep, "1") == "1"
        pid = sup.states()["crashy"].pid
        assert pid is not None and not sup.crashed("crashy")
        os.kill(pid, signal.SIGKILL)
        await until(lambda: sup.crashed("crashy"))
        status = sup.states()["crashy"]
        assert status.state == "failed" and status.pid is None and "SIGKILL" in (status.last_error or "")
        assert kinds(events, "crashy")[-1] == "crashed"
        with pytest.raises(openai.APIConnectionError):  # in-flight use fails at the HTTP layer
            await chat(ep, "2")
    assert sup.states()["crashy"].in_flight == 0

    async with sup.lease("crashy") as ep:
        assert await chat(ep, "3") == "3"
        status = sup.states()["crashy"]
        assert status.pid not in (None, pid) and status.restarts == 1 and status.state == "ready"
        assert not sup.crashed("crashy")
    assert kinds(events, "crashy") == ["starting", "ready", "crashed", "starting", "ready"]


async def test_start_timeout_when_never_healthy(make: Make):
    sup, events = make([fake("slow", "--not-ready", start_timeout=2.0)])
    with pytest.raises(EngineUnavailable) as err:
        async with sup.lease("slow"):
            pass
    assert err.value.reason.startswith("not ready within 2s (health check")  # e.g. "answered HTTP 503"
    status = sup.states()["slow"]
    assert status.state == "failed" and status.pid is None and status.last_error == err.value.reason
    assert kinds(events, "slow") == ["starting", "stopped"]
    starting_pid = int(events[0].detail.split()[-1])
    await until(lambda: gone(starting_pid))


async def test_a_line_from_a_starting_engine_brings_its_next_readiness_probe_forward(
        make: Make, monkeypatch: pytest.MonkeyPatch):
    """Between readiness probes the supervisor waits, up to 0.5 s; a line the engine writes (the worker's `agentgate
    engine ready`, the fake's `listening`) may say it is ready, so the next probe comes at once. Here the waits
    between probes last longer than the test: only the lines can bring the probe that finds the engine ready."""
    monkeypatch.setattr(health, "_FIRST_DELAY", 10 * BOUND)
    monkeypatch.setattr(health, "_MAX_DELAY", 10 * BOUND)
    sup, events = make([fake("talker", start_timeout=10 * BOUND)])

    async def use() -> str | None:
        async with sup.lease("talker") as ep:
            return await chat(ep, "hi")

    assert await asyncio.wait_for(use(), BOUND) == "hi"
    assert kinds(events, "talker") == ["starting", "ready"]


async def test_command_that_exits_immediately_fails_fast_with_reason(make: Make):
    sup, events = make([fake("dead", "--exit-code", "3", start_timeout=120), EngineSpec(
        name="missing", kind="command", command=["/nonexistent/agentgate-engine", "--port", "${PORT}"])])

    async def use(name: str) -> None:
        async with sup.lease(name):
            pass

    with pytest.raises(EngineUnavailable) as err:  # fails on the exit, long before start_timeout
        await asyncio.wait_for(use("dead"), BOUND)
    assert "exited with code 3" in err.value.reason and "refusing to start" in err.value.reason
    assert sup.states()["dead"].state == "failed" and sup.crashed("dead")
    assert kinds(events, "dead") == ["starting", "crashed"]

    with pytest.raises(EngineUnavailable) as err:
        await use("missing")
    assert "cannot start" in err.value.reason and sup.states()["missing"].state == "failed"


async def test_concurrent_leases_share_one_start(make: Make):
    sup, events = make([fake("shared")])
    gate = asyncio.Event()
    endpoints: list[Endpoint] = []

    async def use() -> str | None:
        async with sup.lease("shared") as ep:
            endpoints.append(ep)
            await gate.wait()
            return await chat(ep, "x")

    tasks = [asyncio.ensure_future(use()) for _ in range(5)]
    await until(lambda: sup.states()["shared"].in_flight == 5)
    gate.set()
    assert await asyncio.gather(*tasks) == ["x"] * 5
    assert kinds(events, "shared") == ["starting", "ready"]
    assert len({ep.base_url for ep in endpoints}) == 1


async def test_a_request_after_a_stop_of_a_starting_engine_starts_it_again(make: Make, tmp_path: Path):
    """A stop (an /unload) cancels the start in progress: the requests that waited for that start are told so, but a
    request that comes once the stop was asked for starts the engine again after it, as one that comes while a ready
    engine drains does. The engine here cannot become ready before `gate` exists."""
    gate = tmp_path / "gate"
    script = f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.01; done; exec {shlex.quote(sys.executable)} " \
             f"{shlex.quote(str(FAKE))} --port \"$1\""
    sup, events = make([EngineSpec(name="gated", kind="command", command=["sh", "-c", script, "sh", "${PORT}"])])

    async def use() -> str | None:
        async with sup.lease("gated") as ep:
            return await chat(ep, "hi")

    before = asyncio.ensure_future(use())
    await until(lambda: sup.states()["gated"].state == "starting" and sup.states()["gated"].pid is not None)
    stopping = asyncio.ensure_future(sup.stop("gated"))
    await asyncio.sleep(0)  # the stop is asked for
    after = asyncio.ensure_future(use())
    await asyncio.sleep(0)
    gate.touch()
    with pytest.raises(EngineUnavailable) as err:
        await asyncio.wait_for(before, BOUND)
    assert err.value.reason == "stopped while starting"
    assert await asyncio.wait_for(after, BOUND) == "hi"
    await asyncio.wait_for(stopping, BOUND)
    assert sup.states()["gated"].state == "ready"
    assert kinds(events, "gated") == ["starting", "stopped", "starting", "ready"]


async def test_close_drains_in_flight_then_stops(make: Make):
    sup, events = make([fake("busy"), fake("spare")])
    async with sup.lease("spare"):
        pass
    spare_pid = sup.states()["spare"].pid
    lease = sup.lease("busy")
    ep = await lease.__aenter__()
    pid = sup.states()["busy"].pid
    closing = asyncio.ensure_future(sup.close(drain_timeout=BOUND))
    await until(lambda: sup.closing)
    with pytest.raises(EngineUnavailable) as err:
        async with sup.lease("spare"):
            pass
    assert err.value.reason == "shutting down"
    assert await chat(ep, "still served") == "still served"  # in flight: not cut off
    assert not closing.done() and sup.states()["busy"].state == "ready"
    await lease.__aexit__(None, None, None)
    await asyncio.wait_for(closing, BOUND)
    assert all(s.state == "stopped" for s in sup.states().values())
    assert gone(pid) and gone(spare_pid)  # type: ignore[arg-type]
    await sup.close()  # idempotent
    assert kinds(events, "busy")[-1] == "stopped"


async def test_close_kills_after_drain_timeout_and_sigterm_grace(make: Make, tmp_path: Path):
    sup, _ = make([fake("stubborn", "--ignore-sigterm", "--child-pidfile", str(tmp_path / "child.pid"))],
                  stop_grace=0.3)
    async with sup.lease("stubborn"):
        pid = sup.states()["stubborn"].pid
        child = int((tmp_path / "child.pid").read_text())
        await asyncio.wait_for(sup.close(drain_timeout=0.2), BOUND)  # lease still held: drain gives up
        assert sup.states()["stubborn"].state == "stopped"
    assert gone(pid)  # type: ignore[arg-type]
    await until(lambda: gone(child))  # the whole process group went


async def test_update_keeps_unchanged_restarts_changed_and_drains_removed(make: Make):
    sup, events = make([fake("keep"), fake("change"), fake("drop"), fake("tune", ttl=None)])
    for name in ("keep", "change", "drop", "tune"):
        async with sup.lease(name):
            pass
    before = {n: s.pid for n, s in sup.states().items()}

    drop = sup.lease("drop")
    drop_ep = await drop.__aenter__()
    updating = asyncio.ensure_future(sup.update(
        [fake("keep"), fake("change", "--model", "changed"), fake("tune", ttl=1000.0), fake("new")]))
    await until(lambda: "drop" not in sup.states())
    assert "new" in sup.states() and sup.states()["change"].pid is None  # a fresh record for the new spec
    assert await chat(drop_ep, "draining") == "draining"  # removed, but its in-flight use finishes
    assert not updating.done()
    await drop.__aexit__(None, None, None)
    await asyncio.wait_for(updating, BOUND)
    assert gone(before["drop"]) and gone(before["change"])  # type: ignore[arg-type]

    states = sup.states()
    assert states["keep"].pid == before["keep"] and states["keep"].state == "ready"
    assert states["tune"].pid == before["tune"] and sup.specs()["tune"].ttl == 1000.0
    async with sup.lease("change") as ep:
        assert sup.states()["change"].pid not in (None, before["change"])
        async with client(ep) as c:
            assert [m.id for m in (await c.models.list()).data] == ["changed"]
    with pytest.raises(EngineUnavailable):
        async with sup.lease("drop"):
            pass
    assert kinds(events, "keep") == ["starting", "ready"]


async def test_a_reload_abandons_the_old_start_of_an_entry_waiting_for_room(make: Make):
    """max_loaded 1, a busy, w waits for room; a reload changes w. The reload's notify and the cancel of w's old
    start came in one loop turn, and the cancel was lost: the old w was launched (evicting a), stopped at once,
    and the new one launched after it. Only the new configuration may start."""
    sup, events = make([fake("a"), fake("w", start_timeout=10)], max_loaded=1)
    held = sup.lease("a")
    await held.__aenter__()
    lease = sup.lease("w")
    waiting = asyncio.ensure_future(lease.__aenter__())
    await until(lambda: sup.states()["w"].state == "starting")
    await asyncio.sleep(0.1)
    updating = asyncio.ensure_future(sup.update([fake("a"), fake("w", "--model", "w2", start_timeout=10)]))
    await asyncio.sleep(0.3)
    await held.__aexit__(None, None, None)
    ep = await asyncio.wait_for(waiting, BOUND)
    async with client(ep) as c:
        assert [m.id for m in (await c.models.list()).data] == ["w2"]
    await lease.__aexit__(None, None, None)
    await asyncio.wait_for(updating, BOUND)
    assert kinds(events, "w") == ["starting", "ready"]
    assert kinds(events, "a") == ["starting", "ready", "evicted"]


@pytest.mark.parametrize("how", ["removed and added back", "changed and changed back"])
async def test_a_new_instance_waits_for_an_old_one_still_draining(make: Make, how: str):
    """Two reloads in a row while a request holds the first instance: the instance they leave starts only once
    the old one is gone (two at once would share the name's socket, which the old one removes when it stops)."""
    sup, _ = make([fake("a")])
    held = sup.lease("a")
    old_ep = await held.__aenter__()
    old_pid = sup.states()["a"].pid
    first = asyncio.ensure_future(sup.update([] if how.startswith("removed") else [fake("a", "--model", "b")]))
    await until(lambda: "a" not in sup.states() or sup.states()["a"].pid is None)
    await sup.update([fake("a")])
    lease = sup.lease("a")
    waiting = asyncio.ensure_future(lease.__aenter__())
    await asyncio.sleep(1.0)
    assert not waiting.done() and sup.states()["a"].pid is None and not gone(old_pid)  # type: ignore[arg-type]
    assert await chat(old_ep, "still served") == "still served"
    await held.__aexit__(None, None, None)
    ep = await asyncio.wait_for(waiting, BOUND)
    assert gone(old_pid) and sup.states()["a"].pid not in (None, old_pid)  # type: ignore[arg-type]
    assert await chat(ep, "new") == "new"
    await lease.__aexit__(None, None, None)
    await asyncio.wait_for(first, BOUND)


async def test_a_start_that_gives_up_on_a_draining_instance_leaves_its_slot(make: Make):
    """A lease while the engine drains for a stop gives up after start_timeout; the draining process keeps its
    slot (max_loaded) until it is gone, so another engine waits for room instead of running beside it."""
    sup, _ = make([fake("a", start_timeout=5), fake("b", start_timeout=5)], max_loaded=1)
    held = sup.lease("a")
    await held.__aenter__()
    a_pid = sup.states()["a"].pid
    stopping = asyncio.ensure_future(sup.stop("a", drain_timeout=60))
    await until(lambda: sup.states()["a"].state == "stopping")
    await sup.update([fake("a", start_timeout=1), fake("b", start_timeout=1)])  # the give-ups below: 1 s, not 5
    with pytest.raises(EngineUnavailable, match="previous instance is still stopping"):
        async with sup.lease("a"):
            pass
    assert sup.states()["a"].state == "stopping" and not gone(a_pid)  # type: ignore[arg-type]
    with pytest.raises(EngineUnavailable, match="no room"):
        async with sup.lease("b"):
            pass
    await held.__aexit__(None, None, None)
    await asyncio.wait_for(stopping, BOUND)
    await sup.update([fake("a", start_timeout=5), fake("b", start_timeout=5)])  # b's own start: 5 s again
    async with sup.lease("b") as ep:
        assert await chat(ep, "b") == "b" and gone(a_pid)  # type: ignore[arg-type]


async def test_stop_sweeps_the_process_group(make: Make, tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    sup, _ = make([fake("parent", "--child-pidfile", str(pidfile))])
    async with sup.lease("parent"):
        child = int(pidfile.read_text())
        assert not gone(child)
    await sup.stop("parent")
    await until(lambda: gone(child))


async def test_worker_kind_runs_python_m_engines_on_a_unix_socket(make: Make, tmp_path: Path):
    shim = tmp_path / "python"  # stands in for the interpreter: runs the fake server with the worker's argv
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} \"$@\"\n")
    shim.chmod(0o755)
    runtime = tmp_path / "run"
    spec = EngineSpec(name="org/model:q4", kind="mlx", model="some/model", tool_format="hermes",
                      args=("--max-batch", "4"))
    sup, events = make([spec], runtime_dir=runtime, python=str(shim))
    async with sup.lease("org/model:q4") as ep:
        assert ep.base_url == "http://localhost/v1" and ep.unix_socket is not None
        sock = Path(ep.unix_socket)
        assert sock.parent == runtime and sock.name.endswith(".sock") and "/" not in sock.name[:-5]
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # noqa: ASYNC240
        assert await chat(ep, "over a socket") == "over a socket"
        async with client(ep) as c:
            argv = await c.get("/argv", cast_to=object)
    assert argv == ["-m", "engines", "--model", "some/model", "--socket", str(sock), "--name", "org/model:q4",
                    "--tool-format", "hermes", "--max-batch", "4"]
    await sup.stop("org/model:q4")
    assert not sock.exists()  # noqa: ASYNC240
    assert kinds(events, "org/model:q4") == ["starting", "ready", "stopped"]


WORKER_PRESENT = all(importlib.util.find_spec(m) is not None for m in ("engines.worker.server", "engines.__main__"))


@pytest.mark.skipif(not WORKER_PRESENT, reason="the MLX worker (`python -m engines`) is not present yet")
async def test_mlx_worker_lifecycle(make: Make, tmp_path: Path):
    runtime = tmp_path / "run"
    sup, events = make([EngineSpec(name="tiny", kind="mlx", model="tiny:demo", start_timeout=120, ttl=None)],
                       runtime_dir=runtime)
    async with sup.lease("tiny") as ep:
        assert ep.unix_socket is not None and ep.base_url == "http://localhost/v1"
        assert stat.S_IMODE(os.stat(ep.unix_socket).st_mode) == 0o600
        async with client(ep) as c:
            resp = await c.chat.completions.create(model="tiny", max_tokens=4,
                                                   messages=[{"role": "user", "content": "hi"}])
        assert resp.choices[0].message.role == "assistant"
        socket_path = ep.unix_socket
    await sup.stop("tiny")
    assert not Path(socket_path).exists()  # noqa: ASYNC240
    assert kinds(events, "tiny") == ["starting", "ready", "stopped"]



@pytest.mark.skipif(not WORKER_PRESENT, reason="the MLX worker (`python -m engines`) is not present yet")
async def test_a_tiny_model_its_cache_cannot_hold_fails_in_one_line(make: Make, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture):
    """The worker's traceback (a NotADirectoryError from building tiny:demo on its model thread) was relayed to the
    router's log line by line; the worker now refuses before listening, and that line is the engine's error."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    spec = EngineSpec(name="tiny", kind="mlx", model="tiny:demo", start_timeout=120, ttl=None,
                      env={"AGENTGATE_CACHE": str(blocker / "cache")})
    sup, events = make([spec], runtime_dir=tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="agentgate.engine"), pytest.raises(EngineUnavailable) as err:
        async with sup.lease("tiny"):
            pass
    said = "cannot build tiny:demo: its cache folder"
    assert "exited with code 2" in err.value.reason and said in err.value.reason, err.value.reason
    assert "set AGENTGATE_CACHE to a writable folder" in err.value.reason
    assert sup.states()["tiny"].state == "failed" and said in (sup.states()["tiny"].last_error or "")
    relayed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine tiny: ")]
    assert not any("Traceback" in line or line.startswith("engine tiny:   File ") for line in relayed), relayed
    assert f"engine tiny: agentgate engine: {said} {blocker}/cache/tiny" in "\n".join(relayed), relayed
    assert kinds(events, "tiny") == ["starting", "crashed"]
