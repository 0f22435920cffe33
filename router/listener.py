"""The router's listening sockets, every queued connection accepted in the same pass of the event loop.

libuv (uvloop's core, since 1.45) accepts one connection per pass of the loop. Under load a pass also runs the
work of every request that became ready, so a burst of new connections (a client opening 64 at once) left the
kernel's queue one per pass: at 64 connections with ~70 ms requests the last one waited ~0.7 s before its first
byte was read, and p99 was 4-8x p50 in a short run. `AcceptingSite` reads the listening socket with the loop's
own reader and accepts everything queued (up to the backlog) in one pass, as asyncio's own loop does, then hands
each connection to aiohttp's server with `loop.connect_accepted_socket`. Connections that stay open (what HTTP
clients keep in their pools) are unaffected. asyncio's own loops accept in batches already (and the Windows one
has no `add_reader`): there aiohttp's `TCPSite` serves as before (`accepts_one_per_pass`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from aiohttp import web

log = logging.getLogger("agentgate")

_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
RETRY_ACCEPT_S = 1.0  # after running out of file descriptors or memory, as asyncio's own loop waits


def accepts_one_per_pass(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is uvloop's, whose libuv accepts one queued connection per pass."""
    return type(loop).__module__.partition(".")[0] == "uvloop"


def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to, all on one port (the first one's when `port` is
    0). Raises OSError (e.g. EADDRINUSE) with nothing left open."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    try:
        seen = set()
        for family, kind, proto, _name, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:  # one port for every address
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Listening(asyncio.AbstractServer):
    """The listening sockets of one site, each read by the loop and drained of queued connections per pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop, socks: list[socket.socket], factory: Any,
                 backlog: int) -> None:
        self._loop = loop
        self._socks = socks
        self._factory = factory
        self._backlog = backlog
        self._pending: set[asyncio.Task[None]] = set()  # connections being handed to the server
        self._serving = True
        self._closed = asyncio.Event()
        for sock in socks:
            loop.add_reader(sock.fileno(), self._accept, sock)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._socks)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:  # stop reading for a while rather than spin on the queue
                    log.warning("cannot accept connections (%s); trying again in %.0f s",
                                exc.strerror or exc, RETRY_ACCEPT_S)
                    self._loop.remove_reader(sock.fileno())
                    self._loop.call_later(RETRY_ACCEPT_S, self._resume, sock)
                else:
                    log.warning("accepting a connection failed: %s", exc.strerror or exc)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:  # the client left before its connection was set up
            conn.close()

    def _resume(self, sock: socket.socket) -> None:
        if self._serving and sock.fileno() >= 0:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        for sock in self._socks:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._closed.set()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        return None  # serving from the start

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def wait_closed(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class AcceptingSite(web.BaseSite):
    """`web.TCPSite` for `host`:`port`, its queued connections accepted in batches (see the module's text)."""

    __slots__ = ("_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        socks = bind(self._host, self._port, self._backlog)
        self._server = Listening(asyncio.get_running_loop(), socks, server, self._backlog)
