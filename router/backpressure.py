"""The bound on a write to a client that stopped reading, for the answers `relay._Out` does not write (a whole
answer, the bytes `/upstream` passes on): a write during which no byte left the connection's write buffer for
`server.idle_timeout` seconds ends the connection, so that a client that keeps it open but reads no more does not
hold the request (in flight: a shutdown's drain, a reload's retired providers, an engine's lease) and its answer's
bytes for ever. A client that reads slowly makes progress, and is never cut."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from .relay import WRITE_STALL_S, ClientGone

MIN_TICK_S = 0.05


class WriteWatch:
    """The writes to one client connection, each watched while it waits: the buffer's size looked at every
    quarter of `stall` (a write that completes, or bytes that leave, are progress); the connection aborted once
    none was made for `stall` seconds (a close would wait for the unread bytes to go out first), and the write then
    raises `ClientGone`. Without a transport or a bound, writes are awaited as they are."""

    __slots__ = ("_loop", "_since", "_size", "_stall", "_timer", "_transport", "stalled")

    def __init__(self, transport: asyncio.Transport | None, stall: float | None) -> None:
        bounded = stall is not None and stall > 0  # (uvloop's transports are no `asyncio.Transport` instances)
        self._transport = transport if bounded else None
        self._stall = stall if stall is not None and bounded else 0.0
        self._loop = asyncio.get_running_loop()
        self._since = 0.0
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self.stalled = False

    @classmethod
    def of(cls, request: web.Request) -> WriteWatch:
        """The watch on `request`'s connection, bounded by the app's `server.idle_timeout`."""
        return cls(request.transport, request.app.get(WRITE_STALL_S))

    async def write(self, pending: Awaitable[None]) -> None:
        """`pending` (a write to the client) awaited under the watch; `ClientGone` when the watch ended it."""
        if self._transport is None:
            await pending
            return
        self._since, self._size = self._loop.time(), self._transport.get_write_buffer_size()
        self._timer = self._loop.call_later(self._tick(), self._check)
        try:
            await pending
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self.stalled:  # (the aborted connection let the write return)
            raise ClientGone

    def _tick(self) -> float:
        return max(MIN_TICK_S, self._stall / 4)

    def _check(self) -> None:
        transport = self._transport
        if transport is None:
            return
        now, size = self._loop.time(), transport.get_write_buffer_size()
        if size < self._size or size == 0:
            self._since = now
        self._size = size
        if now - self._since >= self._stall:
            self.stalled = True
            self._timer = None
            transport.abort()
            return
        self._timer = self._loop.call_later(self._tick(), self._check)
