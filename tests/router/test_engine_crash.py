"""An engine that dies while requests use it, as the client sees it: a request that meets the crash before the
engine read it is served by the restarted engine, and requests the engine was working on get 502 engine_crashed
(streamed or not). The engine is the fake server standing in for the MLX worker (on its Unix socket), and the
supervisor is made to notice the exit late, as it does when the broken connection reaches the router first."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from engines.supervisor import lifecycle
from engines.supervisor.process import ChildProcess
from router.upstream import engine as engine_upstream
from router.upstream.base import UpstreamRequest
from router.upstream.engine import EngineBreaker
from tests.engines.test_supervisor import gone
from tests.waiting import wait_until

FAKE = Path(__file__).resolve().parents[1] / "engines" / "fake_server.py"
LATE = 0.3  # seconds the supervisor hears of an engine's exit after it happened
BOUND = 30.0


@pytest.fixture
def late_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every child's exit reaches the supervisor `LATE` seconds after the process is gone."""
    exited = ChildProcess._exited

    def late(self: ChildProcess) -> None:
        asyncio.get_running_loop().call_later(LATE, exited, self)

    monkeypatch.setattr(ChildProcess, "_exited", late)


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`engine: mlx` entries run the fake server with the worker's command line (on a Unix socket)."""
    shim = tmp_path / "python"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} \"$@\"\n")
    shim.chmod(0o755)
    monkeypatch.setattr(lifecycle, "Supervisor",
                        functools.partial(lifecycle.Supervisor, python=str(shim)))


def config(tmp: Path) -> str:
    return f"engines:\n  runtime_dir: '{tmp / 'run'}'\nmodels:\n  - {{name: m, engine: mlx, model: 'tiny:demo'}}\n"


def block_until(predicate: Callable[[], bool]) -> None:
    """Wait without running the event loop, so that nothing it would notice meanwhile (the engine's exit, the close
    of a pooled connection) is noticed before the next request is sent."""
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.005)


async def test_a_request_sent_right_after_a_crash_restarts_the_engine(router: Any, tmp_path: Path,
                                                                       fake_worker: None, late_exits: None) -> None:
    r = await router(config(tmp_path))
    client, sup = r.client(), r.state.supervisor
    hi = [{"role": "user", "content": "hi"}]
    for _ in range(2):  # the second time, the first request's crash made the engine restart once already
        await client.chat.completions.create(model="m", messages=hi)  # (a pooled connection to it now)
        pid = sup.states()["m"].pid
        os.kill(pid, signal.SIGKILL)
        block_until(lambda: gone(pid))  # noqa: B023
        again = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "again"}])
        assert again.choices[0].message.content == "again"
        status = sup.states()["m"]
        assert status.state == "ready" and status.pid not in (None, pid) and status.restarts >= 1
    upstream = r.state.runtime.upstreams["engine:m"]
    assert upstream.breaker.state == "closed" and upstream.breaker.consecutive == 0


async def test_a_request_on_a_pooled_connection_to_a_dead_engine_is_sent_to_the_restarted_one(
        router: Any, tmp_path: Path, fake_worker: None, late_exits: None) -> None:
    """Straight to the engine's upstream, so that the request goes out on the connection the dead engine left in
    the pool (its write fails: broken pipe) before the event loop has seen that connection close."""
    r = await router(config(tmp_path))
    sup, upstream = r.state.supervisor, r.state.runtime.upstreams["engine:m"]

    async def send(text: str) -> tuple[int, Any]:
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        reply = await upstream.send(UpstreamRequest("/chat/completions", body))
        try:
            return reply.status, json.loads(await reply.read())
        finally:
            await reply.close()

    assert (await send("hi"))[0] == 200
    pid = sup.states()["m"].pid
    os.kill(pid, signal.SIGKILL)
    block_until(lambda: gone(pid))
    status, doc = await send("again")
    assert status == 200 and doc["choices"][0]["message"]["content"] == "again"
    assert sup.states()["m"].pid not in (None, pid) and sup.states()["m"].in_flight == 0


async def test_requests_in_flight_when_the_engine_dies_get_engine_crashed(router: Any, tmp_path: Path,
                                                                           fake_worker: None,
                                                                           late_exits: None) -> None:
    r = await router(config(tmp_path))
    client, sup = r.client(), r.state.supervisor
    hi = [{"role": "user", "content": "hi"}]
    await client.chat.completions.create(model="m", messages=hi)
    pid = sup.states()["m"].pid
    body: dict[str, Any] = {"model": "m", "messages": hi, "fake_sleep": 60}

    async def streamed() -> list[Any]:
        async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions",
                                                        json={**body, "stream": True}) as resp:
            assert resp.status == 200
            text = (await resp.read()).decode()
        return [json.loads(line[6:]) for line in text.splitlines()
                if line.startswith("data: ") and line != "data: [DONE]"]

    whole = asyncio.create_task(client.chat.completions.create(model="m", messages=hi,
                                                               extra_body={"fake_sleep": 60}))
    stream = asyncio.create_task(streamed())
    await wait_until(lambda: sup.states()["m"].in_flight == 2, timeout=BOUND)
    await asyncio.sleep(0.2)  # both requests are with the engine
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIStatusError) as info:
        await asyncio.wait_for(whole, BOUND)
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict) and info.value.body.get("code") == "engine_crashed", info.value.body
    events = await asyncio.wait_for(stream, BOUND)
    assert events[-1]["error"]["code"] == "engine_crashed", events[-1]
    await wait_until(lambda: sup.crashed("m"), timeout=BOUND)
    again = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "again"}])
    assert again.choices[0].message.content == "again" and sup.states()["m"].pid != pid


async def test_a_live_engine_that_drops_a_connection_fails_at_once(router: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine whose process stays alive is not waited on for a crash verdict: its dropped connection is an
    ordinary failure (502 upstream_reset), answered at once, not after the grace a dying engine is given (made a
    minute here, so waiting it out would outlast the bound)."""
    monkeypatch.setattr(engine_upstream, "CRASH_GRACE", 60.0)
    command = shlex.join([sys.executable, str(FAKE), "--port"]) + " ${PORT}"
    r = await router(f"engines:\n  runtime_dir: '{tmp_path / 'run'}'\nmodels:\n  - {{name: c, command: '{command}'}}\n")
    client, sup = r.client(), r.state.supervisor
    hi = [{"role": "user", "content": "hi"}]
    await client.chat.completions.create(model="c", messages=hi)
    pid = sup.states()["c"].pid
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as info:
            await asyncio.wait_for(client.chat.completions.create(
                model="c", messages=hi, extra_body={"fake_drop": True}), BOUND)
        assert info.value.status_code == 502 and isinstance(info.value.body, dict)
        assert info.value.body.get("code") == "upstream_reset", info.value.body
    assert sup.states()["c"].pid == pid and not sup.crashed("c")


async def test_a_success_after_an_engine_failure_resets_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure is judged `CRASH_GRACE` seconds late; a success that came after it still resets the count, so the
    breaker opens only after `failures` failures with no success between them (not after a 200)."""
    monkeypatch.setattr(engine_upstream, "CRASH_GRACE", 0.01)

    class Alive:
        def crash_mark(self) -> int:
            return 0  # the engine never crashed: every failure is the engine's

    breaker = EngineBreaker(Alive(), failures=2, cooldown=30)  # type: ignore[arg-type]
    breaker.failure()
    breaker.success()
    breaker.failure()
    await wait_until(lambda: breaker.consecutive > 0)
    await asyncio.sleep(0.05)
    assert breaker.state == "closed" and breaker.consecutive == 1
    breaker.failure()
    await wait_until(lambda: breaker.state == "open")
