"""`agentgate_engine_state{engine,state}` is 1 for the state /ready and /running report for each engine, at every
step: a start that never becomes ready (failed), a start that waits for room (starting), an unload that waits for
the requests in flight (stopping)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

from router.metrics import ENGINE_STATES
from tests.conftest import RouterHandle
from tests.ops.conftest import sample
from tests.waiting import wait_until

FAKE = Path(__file__).resolve().parents[1] / "engines" / "fake_server.py"
HI = [{"role": "user", "content": "hi"}]


def engine(name: str, *flags: str, start_timeout: float = 30) -> str:
    argv = ", ".join(f'"{a}"' for a in (sys.executable, FAKE, "--port", "${PORT}", *flags))
    return f"  - name: {name}\n    command: [{argv}]\n    start_timeout: {start_timeout:g}\n"


async def _call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, json=body) as resp:
        return resp.status, await (resp.json() if resp.content_type == "application/json" else resp.text())


async def _chat(r: RouterHandle, model: str, hold: Path | None = None) -> int:
    """A chat request's status; with `hold`, the engine answers once that file exists (it stays busy until then)."""
    return (await _call("POST", r.url + "/v1/chat/completions",
                        {"model": model, "messages": HI, **({"fake_hold": str(hold)} if hold else {})}))[0]


async def _reported(r: RouterHandle) -> dict[str, str]:
    """Each engine's state as /ready reports it, checked against /running for the engines with a process."""
    ready = (await _call("GET", r.url + "/ready"))[1]["engines"]
    running = (await _call("GET", r.url + "/running"))[1]["running"]
    states = {name: e["state"] for name, e in ready.items()}
    assert {row["model"]: row["state"] for row in running} == {
        n: s for n, s in states.items() if s in ("starting", "ready", "stopping")}
    return states


async def agreed_states(r: RouterHandle) -> dict[str, str]:
    """The engines' states, after checking that the metric gives each the state /ready and /running report (read
    between two equal reports, so that nothing moved meanwhile)."""
    for _ in range(5):
        before = await _reported(r)
        text = (await _call("GET", r.url + "/metrics"))[1]
        if await _reported(r) == before:
            break
    else:
        raise AssertionError("the engines' states kept changing")
    metric = {name: [s for s in ENGINE_STATES if sample(text, "agentgate_engine_state", engine=name, state=s) == 1]
              for name in before}
    assert metric == {name: [state] for name, state in before.items()}, (metric, before)
    return before


async def test_a_start_that_never_becomes_ready_is_failed_in_the_metric(router: Any) -> None:
    r = await router("models:\n" + engine("slow", "--not-ready", start_timeout=1))
    assert await agreed_states(r) == {"slow": "stopped"}
    assert await _chat(r, "slow") == 503
    assert await agreed_states(r) == {"slow": "failed"}
    listed = (await _call("GET", r.url + "/v1/models"))[1]["data"][0]["agentgate"]
    assert listed["engine"] == "failed"


async def test_an_unload_that_drains_is_stopping_in_the_metric(router: Any, tmp_path: Path) -> None:
    r = await router("models:\n" + engine("local"))
    sup = r.state.supervisor
    assert await _chat(r, "local") == 200
    release = tmp_path / "release"
    busy = asyncio.create_task(_chat(r, "local", release))
    await wait_until(lambda: sup.states()["local"].in_flight == 1)
    unload = asyncio.create_task(_call("POST", r.url + "/unload/local"))
    await wait_until(lambda: sup.states()["local"].state == "stopping")
    assert await agreed_states(r) == {"local": "stopping"}
    release.touch()
    assert await busy == 200
    assert (await unload)[1]["unloaded"] == ["local"]
    assert await agreed_states(r) == {"local": "stopped"}


async def test_a_start_that_waits_for_room_is_starting_in_the_metric(router: Any, tmp_path: Path) -> None:
    r = await router("engines: {max_loaded: 1}\nmodels:\n" + engine("a") + engine("b"))
    sup = r.state.supervisor
    assert await _chat(r, "a") == 200
    release = tmp_path / "release"
    busy = asyncio.create_task(_chat(r, "a", release))
    await wait_until(lambda: sup.states()["a"].in_flight == 1)
    waiting = asyncio.create_task(_chat(r, "b"))
    await wait_until(lambda: sup.states()["b"].state == "starting")
    assert await agreed_states(r) == {"a": "ready", "b": "starting"}
    release.touch()
    assert await busy == 200
    assert await waiting == 200
    assert await agreed_states(r) == {"a": "stopped", "b": "ready"}
