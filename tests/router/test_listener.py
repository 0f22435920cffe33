"""The router's listening socket accepts a burst of new connections in one pass of the event loop (libuv, under
uvloop, accepts one per pass: a burst drained one per pass of request work), serves every one, and frees its
port when stopped."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from typing import Any, cast

import pytest

from router import listener
from router.app import create_app, start
from router.config import parse_config
from router.state import STATE

uvloop = pytest.importorskip("uvloop") if sys.platform != "win32" else None

CONFIG = """
providers:
  up: {type: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  - {name: m, provider: up}
"""
BURST = 40


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _burst(port: int, n: int) -> list[socket.socket]:
    """`n` connections, each with a request sent, all queued before the loop gets to run."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    return socks


async def _answered(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
        if not chunk:
            break
        data += chunk
    return data


def _run_on_uvloop(coro_fn: Any) -> Any:
    assert uvloop is not None
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def test_a_burst_of_connections_is_accepted_in_one_pass_on_uvloop() -> None:
    async def main() -> tuple[int, list[bytes]]:
        app = create_app(parse_config(CONFIG, env={}))
        running = await start(app)
        socks = _burst(_port(running.url), BURST)
        try:
            for _ in range(4):  # accept; hand over; connection_made: a few passes, not one per connection
                await asyncio.sleep(0)
            accepted = len(running.runner.server.connections)  # type: ignore[union-attr]
            answers = await asyncio.gather(*(_answered(s) for s in socks))
            return accepted, answers
        finally:
            for s in socks:
                s.close()
            await running.stop()

    accepted, answers = _run_on_uvloop(main)
    assert accepted == BURST
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers[:2]


def test_the_port_is_free_once_the_router_stops() -> None:
    async def main() -> int:
        app = create_app(parse_config(CONFIG, env={}))
        running = await start(app)
        port = _port(running.url)
        await running.stop()
        return port

    port = _run_on_uvloop(main)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    with socket.socket() as s:  # and it can be bound again at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


async def test_a_taken_port_is_an_address_in_use_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = create_app(parse_config(CONFIG, env={}))
        with pytest.raises(OSError) as info:
            await start(app, "127.0.0.1", taken.getsockname()[1])
        assert info.value.errno == errno.EADDRINUSE


def test_every_address_of_a_name_shares_one_port() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socks = listener.bind("localhost", 0, 8)
    except OSError as exc:
        pytest.skip(f"localhost does not bind here: {exc}")
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(ports) == 1
        for s in socks:
            with socket.create_connection((s.getsockname()[0], s.getsockname()[1]), timeout=2):
                pass
    finally:
        for s in socks:
            s.close()


async def test_an_app_served_through_the_site_answers(router: Any) -> None:
    handle = await router(CONFIG)
    assert isinstance(handle.app[STATE], object)
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(handle.url))
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()


class _Exhausted:
    """A listening socket whose accept() fails as when the process is out of file descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")


async def test_out_of_file_descriptors_pauses_accepting_then_resumes(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(listener, "RETRY_ACCEPT_S", 0.05)
    loop = asyncio.get_running_loop()
    real = listener.bind("127.0.0.1", 0, 8)[0]
    fake = _Exhausted(real)
    server = listener.Listening(loop, [], lambda: None, 8)  # reads no socket of its own
    loop.add_reader(real.fileno(), server._accept, cast(socket.socket, fake))
    with socket.create_connection(real.getsockname()):
        await asyncio.sleep(0.02)
        assert fake.calls == 1  # one failure: reading stopped, not a spin on the queued connection
        await asyncio.sleep(0.02)
        assert fake.calls == 1
        server._socks = [real]
        await asyncio.sleep(0.1)  # read again after RETRY_ACCEPT_S: still failing, still paced
        assert 2 <= fake.calls <= 4
    server.close()
    assert "cannot accept connections" in caplog.text


async def test_asyncio_loops_keep_aiohttps_own_site(router: Any) -> None:
    """asyncio's loops accept in batches already (Windows' has no add_reader): the plain TCPSite serves there."""
    assert not listener.accepts_one_per_pass(asyncio.get_running_loop())
    handle = await router(CONFIG)
    sites = handle.running.runner.sites
    assert sites and not any(isinstance(s, listener.AcceptingSite) for s in sites)


def test_uvloop_gets_the_accepting_site() -> None:
    async def main() -> list[Any]:
        app = create_app(parse_config(CONFIG, env={}))
        running = await start(app)
        try:
            return list(running.runner.sites)
        finally:
            await running.stop()

    sites = _run_on_uvloop(main)
    assert len(sites) == 1 and isinstance(sites[0], listener.AcceptingSite)
