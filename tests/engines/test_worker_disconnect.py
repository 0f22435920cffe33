"""A streamed answer's client leaving in each phase: before the headers, between the headers and the first (role)
chunk, mid-stream, and while a long prompt is prefilled. Each time the batch slot is freed (/stats shows no active
request), nothing is logged at WARNING or above (no aiohttp "Error handling request" traceback), and the worker
serves the next request and the streams in flight.

The clients are plain sockets closed from the test, so that where the server stands when it learns of the close is
set by the test rather than by timing: the test waits until the close has reached the server's socket, which the
event loop then reads at its next select."""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engines.worker.scheduler import Scheduler, SequenceHandle, Started
from engines.worker.server import WORKER
from tests.engines.conftest import Engine

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = [{"role": "user", "content": "Hello there, what is the weather like in Paris today?"}]
PATHS = ["/v1/chat/completions", "/v1/completions"]


def _ask(path: str, **extra: Any) -> dict[str, Any]:
    ask = {"messages": USER} if path.endswith("chat/completions") else {"prompt": "hi"}
    return {"model": "random", **ask, "max_tokens": 3000, "temperature": 0, "stream": True, **extra}


def _no_eos(models: dict[str, Path]) -> dict[str, int]:
    eos = json.loads((models["random"] / "config.json").read_text())["eos_token_id"]
    return {str(eos): -100}


def _connect(e: Engine, path: str, body: dict[str, Any]) -> socket.socket:
    """A client socket that has sent its request (the server reads it once the test yields to the loop)."""
    host, port = e.url.removeprefix("http://").rsplit(":", 1)
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head + data)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a client killed or timing out does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _close(sock: socket.socket, e: Engine, close: Callable[[socket.socket], None]) -> None:
    """`close(sock)`, then wait (blocking the loop) until the server's end of the connection is readable: the
    loop's next select reads the close there. Loopback delivers a FIN or RST before close() returns as a rule, but
    not under every load."""
    server = e.worker.runner.server
    assert server is not None
    peer = sock.getsockname()
    transports = [t for t in server._connections.values() if t.get_extra_info("peername") == peer]
    assert len(transports) == 1, "the server has not accepted the connection"
    fd = transports[0].get_extra_info("socket").fileno()
    close(sock)
    readable, _, _ = select.select([fd], [], [], 10)
    assert readable, "the client's close never reached the server"


async def _read_status_line(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    got = b""
    while b"\r\n" not in got:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
        assert chunk, f"the server closed after {got!r}"
        got += chunk
    return got.split(b"\r\n", 1)[0]


async def _read_chunks(sock: socket.socket, count: int) -> None:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    got = b""
    while got.count(b"data: {") < count:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 30)
        assert chunk, f"the stream ended after {got.count(b'data: {')} chunks"
        got += chunk


class ResetSpy:
    """Counts the ConnectionResetErrors that StreamResponse.prepare and .write raise, by method."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.raised = {"prepare": 0, "write": 0}
        prepare, write = web.StreamResponse.prepare, web.StreamResponse.write

        async def spied_prepare(resp: web.StreamResponse, request: Any) -> Any:
            try:
                return await prepare(resp, request)
            except ConnectionResetError:
                self.raised["prepare"] += 1
                raise

        async def spied_write(resp: web.StreamResponse, data: Any) -> None:
            try:
                await write(resp, data)
            except ConnectionResetError:
                self.raised["write"] += 1
                raise

        monkeypatch.setattr(web.StreamResponse, "prepare", spied_prepare)
        monkeypatch.setattr(web.StreamResponse, "write", spied_write)


def _on_start(sched: Scheduler, act: Callable[[Callable[[], None]], None]) -> None:
    """When the scheduler hands the loop a sequence's Started event, `act(deliver)` runs instead of the delivery,
    on the loop: it decides when the events are delivered (the handler wakes the iteration after)."""
    real = sched._deliver
    done = False

    def deliver(events: list[tuple[SequenceHandle, Any]]) -> None:
        nonlocal done
        if done or not any(isinstance(event, Started) for _, event in events):
            real(events)
            return
        done = True
        act(lambda: real(events))

    sched._deliver = deliver  # type: ignore[method-assign]


async def _settled(e: Engine) -> dict[str, Any]:
    """The request cancelled, and nothing active, queued, prefilling or decoding."""
    return await e.wait_stats(lambda s: s["requests"]["cancelled"] == 1 and s["requests"]["active"] == 0
                              and s["queue"] == 0 and s["running"] == 0)


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


@asynccontextmanager
async def _bystander(e: Engine, path: str, no_eos: dict[str, int],
                     max_tokens: int = 200) -> AsyncIterator[asyncio.Task[bytes]]:
    """Another stream in flight (past its first chunk) while a client leaves; its task gives its whole body."""
    body = _ask(path, max_tokens=max_tokens, logit_bias=no_eos)
    started = asyncio.Event()

    async def read() -> bytes:
        async with aiohttp.ClientSession() as session, session.post(e.url + path, json=body) as resp:
            got = b""
            async for line in resp.content:
                got += line
                started.set()
            return got

    task = asyncio.ensure_future(read())
    await asyncio.wait_for(started.wait(), 30)
    yield task
    task.cancel()


def _whole(stream: bytes) -> bytes:
    """A stream checked to end with [DONE]."""
    assert stream.rstrip().endswith(b"data: [DONE]"), stream[-200:]
    return stream


async def _still_serves(e: Engine, path: str) -> None:
    """The next request is answered."""
    status, body = await e.post_raw(path, json.dumps(_ask(path, stream=False, max_tokens=4)).encode())
    assert status == 200, body
    assert body["usage"]["completion_tokens"] >= 1


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_gone_before_the_headers(engine: Callable[..., Awaitable[Engine]], tiny_models, caplog,
                                                monkeypatch, path: str) -> None:
    """The client closed while its request waited for a slot, and the loop read its FIN (the transport closing)
    before the handler woke with the admission, but before aiohttp cancelled it: the headers' write raised."""
    e = await engine("random")
    spy = ResetSpy(monkeypatch)
    with caplog.at_level(logging.DEBUG):
        async with _bystander(e, path, _no_eos(tiny_models)) as other:
            sock = _connect(e, path, _ask(path))
            loop = asyncio.get_running_loop()

            def leave(deliver: Callable[[], None]) -> None:  # the FIN read in the loop's next pass, then the event
                _close(sock, e, socket.socket.close)
                loop.call_soon(deliver)

            _on_start(e.worker.app[WORKER].scheduler, leave)
            stats = await _settled(e)
            assert stats["requests"]["served"] == 1 and b'"finish_reason":"length"' in _whole(await other)
        await _still_serves(e, path)
    _no_errors(caplog)
    assert spy.raised == {"prepare": 1, "write": 0}
    assert sum("the client went away" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("path", "raised"), [(PATHS[0], 1), (PATHS[1], 0)])
async def test_a_client_gone_after_the_headers(engine: Callable[..., Awaitable[Engine]], tiny_models, caplog,
                                               monkeypatch, path: str, raised: int) -> None:
    """The client reset the connection as the handler woke: the headers' send failed inside the transport, which
    closed, and a chat's role chunk, written with them, raised ClientConnectionResetError. A completion writes
    nothing before its first token: aiohttp cancels its handler first."""
    e = await engine("random")
    spy = ResetSpy(monkeypatch)
    with caplog.at_level(logging.DEBUG):
        async with _bystander(e, path, _no_eos(tiny_models)) as other:
            sock = _connect(e, path, _ask(path))

            def leave(deliver: Callable[[], None]) -> None:  # the event, then the RST read in the loop's next pass
                deliver()
                _close(sock, e, _reset)

            _on_start(e.worker.app[WORKER].scheduler, leave)
            stats = await _settled(e)
            assert stats["requests"]["served"] == 1 and b'"finish_reason":"length"' in _whole(await other)
        await _still_serves(e, path)
    _no_errors(caplog)
    assert spy.raised == {"prepare": 0, "write": raised}
    assert sum("the client went away" in r.getMessage() for r in caplog.records) == raised


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("close", [socket.socket.close, _reset], ids=["fin", "rst"])
async def test_a_client_gone_mid_stream(engine: Callable[..., Awaitable[Engine]], tiny_models, caplog, path: str,
                                        close: Callable[[socket.socket], None]) -> None:
    e = await engine("random")
    sock = _connect(e, path, _ask(path, logit_bias=_no_eos(tiny_models)))
    with caplog.at_level(logging.DEBUG):
        await _read_chunks(sock, 5)
        close(sock)
        stats = await _settled(e)
        assert stats["tokens"]["generated"] < 3000
        await _still_serves(e, path)
    _no_errors(caplog)


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_gone_while_waiting_for_a_slot(engine: Callable[..., Awaitable[Engine]], tiny_models, caplog,
                                                      path: str) -> None:
    """With the one slot taken, a stream is admitted (its headers go out) and waits in the batch generator's queue:
    its client leaving takes it out of that queue, and the stream in the slot goes on."""
    e = await engine("random", max_batch=1)
    caplog.set_level(logging.DEBUG)
    async with _bystander(e, path, _no_eos(tiny_models), max_tokens=500) as other:
        sock = _connect(e, path, _ask(path))
        assert (await _read_status_line(sock)).startswith(b"HTTP/1.1 200")
        held = await e.stats()
        assert held["running"] == 1 and held["queue"] == 1, held  # waiting behind the stream in the slot
        sock.close()
        stats = await e.wait_stats(lambda s: s["requests"]["cancelled"] == 1 and s["queue"] == 0)
        assert stats["requests"]["served"] == 0 and stats["running"] == 1
        assert b'"finish_reason":"length"' in _whole(await other)
    stats = await _settled(e)
    assert stats["requests"]["served"] == 1 and stats["peak_batch"] == 1
    await _still_serves(e, path)
    _no_errors(caplog)


class PrefillGate:
    """Holds the MLX thread before its second batch step until released: the first step admitted the sequence and
    prefilled its first `prefill_step_size` tokens (its Started event goes out after it)."""

    def __init__(self, sched: Scheduler) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.steps = 0
        real = sched._step

        def step() -> None:
            self.steps += 1
            if self.steps == 2:
                self.entered.set()
                self.release.wait(60)
            real()

        sched._step = step  # type: ignore[method-assign]


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_gone_during_a_long_prefill(engine: Callable[..., Awaitable[Engine]], caplog, path: str,
                                                   ) -> None:
    e = await engine("random", prefill_step_size=16)
    sched = e.worker.app[WORKER].scheduler
    gate = PrefillGate(sched)
    cancelled = asyncio.Event()
    cancel = sched.cancel

    def spied_cancel(handle: SequenceHandle) -> None:
        cancel(handle)
        cancelled.set()

    sched.cancel = spied_cancel  # type: ignore[method-assign]
    long = "the weather in Paris is mild today " * 60
    ask = {"messages": [{"role": "user", "content": long}]} if path.endswith("chat/completions") else {"prompt": long}
    sock = _connect(e, path, {**_ask(path), **ask})
    caplog.set_level(logging.DEBUG)
    try:
        assert (await _read_status_line(sock)).startswith(b"HTTP/1.1 200")
        assert await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 30)
        held = await e.stats()
        assert held["queue"] == 1 and held["running"] == 0  # prefilling
        sock.close()
        await asyncio.wait_for(cancelled.wait(), 30)
    finally:
        gate.release.set()
    stats = await _settled(e)
    prompt = stats["tokens"]["prompt"]
    assert prompt > 16 * 10
    assert stats["tokens"]["generated"] == 0 and gate.steps < prompt // 16  # the prefill stopped with it
    await _still_serves(e, path)
    _no_errors(caplog)
