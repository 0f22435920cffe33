"""Shutdown within its drain time: the requests in flight when the router is told to stop get `DRAIN_S` seconds
to finish; the streams still running then end with their route's terminal error event (never a cut connection a
client reads as a network failure, logged as a client that left); the others are cancelled.

aiohttp's own shutdown waits `shutdown_timeout` for each connection's handler, then cancels it and waits as long
again, and a streaming handler outlives the cancellation of its request: a stream was cut without a word at about
twice the timeout, past what a service manager allows before it kills the process (and its engines)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

log = logging.getLogger("agentgate")

DRAIN_S = 30.0  # what the README promises: requests in flight get this long once the router is told to stop
END_S = 3.0  # then: how long the streams still running get to write their terminal event


class InFlight:
    """The handler tasks of the requests in flight (every proxying route registers), and which of them stream."""

    def __init__(self) -> None:
        self.server: web.Server | None = None  # the HTTP server, once it runs (its idle connections are closed)
        self._tasks: set[asyncio.Task[object]] = set()
        self._streams: set[asyncio.Task[object]] = set()
        self._ending: set[asyncio.Task[object]] = set()  # streams told to end (their cancellation is ours)
        self._stopped: set[asyncio.Task[object]] = set()  # every request the shutdown cancelled
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> asyncio.Task[object] | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._idle.clear()
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
            self._tasks.discard(task)
            self._streams.discard(task)
            self._ending.discard(task)
            self._stopped.discard(task)
            if not self._tasks:
                self._idle.set()

    def streaming(self) -> None:
        """The current request's answer is a stream (told to end at the drain's end, not cancelled)."""
        task = asyncio.current_task()
        if task is not None and task in self._tasks:
            self._streams.add(task)

    def streams(self) -> bool:
        """Whether the current request's answer began as a stream."""
        return asyncio.current_task() in self._streams

    def ending(self) -> bool:
        """Whether the current task's cancellation is the shutdown's (its stream ends with an error event)."""
        return asyncio.current_task() in self._ending

    def stopped(self) -> bool:
        """Whether the current task was cancelled by the shutdown (not by a client that left)."""
        return asyncio.current_task() in self._stopped

    async def drain(self, timeout: float | None = None, end_timeout: float = END_S) -> None:
        """Wait up to `timeout` (`DRAIN_S`) for the requests in flight; then end the streams still running with
        their error event and cancel the other requests."""
        timeout = DRAIN_S if timeout is None else timeout
        self._close_idle()
        if self._tasks:
            log.info("draining %d request(s) in flight", len(self._tasks))
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
                return
            except asyncio.TimeoutError:
                pass
        left = list(self._tasks)
        if not left:
            return
        streams = [t for t in left if t in self._streams]
        log.warning("shutting down with %d request(s) still in flight after %gs (%d stream(s) end with an error "
                    "event)", len(left), timeout, len(streams))
        self._ending.update(streams)
        self._stopped.update(left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=end_timeout)


    def _close_idle(self) -> None:
        """Keep-alive connections with no request on its way are closed now: told to close, aiohttp ignores what
        they send, and a pooled client's next request on one waited out the drain unanswered instead of
        reconnecting (and finding the port closed)."""
        for conn in list(self.server.connections if self.server is not None else ()):
            # waiting for its next request (its wait cancelled by the shutdown's close, or ended with it), nothing
            # read: nothing it is sent will be answered. One with a request on its way (read and queued, or its
            # handler about to run) is left to finish.
            task, waiter = getattr(conn, "_task_handler", None), getattr(conn, "_waiter", None)
            waiting = waiter is not None and (waiter.cancelled() or not waiter.done())
            if (waiting or task is None or task.done()) and not getattr(conn, "_request_in_progress", True) \
                    and not getattr(conn, "_messages", True):
                conn.force_close()


def uncancel(task: asyncio.Task[object]) -> None:
    """The task's cancellation taken back, where Python counts them (3.11+): the shutdown's, handled."""
    undo = getattr(task, "uncancel", None)
    if undo is not None:
        undo()


IN_FLIGHT = web.AppKey("agentgate_in_flight", InFlight)


async def drain_on_shutdown(app: web.Application) -> None:
    """`on_shutdown`: the listening sockets are closed and idle connections told to close; wait for the rest."""
    await app[IN_FLIGHT].drain()
