"""Readiness probing: poll a health URL (TCP or Unix socket) until it answers 200, the process exits,
or the deadline passes. A line the process writes brings the next probe forward: the MLX worker says
`agentgate engine ready` as its health turns 200, so the wait ends there, not at the end of a backoff."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

_FIRST_DELAY = 0.05
_MAX_DELAY = 0.5
_PROBE_TIMEOUT = 2.0
_LINE_GAP = 0.02  # a process that writes many lines is probed at most this often


@dataclass(frozen=True)
class Readiness:
    outcome: str  # "ready" | "exited" | "timeout"
    note: str = ""  # what the last probe saw, for error messages


async def wait_ready(health_url: str, *, unix_socket: str | None, exited: asyncio.Future[int],
                     deadline: float, wrote: asyncio.Event | None = None) -> Readiness:
    """Poll `health_url` with a short backoff. `deadline` is in `loop.time()` units. `wrote`, set when the process
    writes a line, ends a wait between probes early (this clears it)."""
    loop = asyncio.get_running_loop()
    connector: aiohttp.BaseConnector = (
        aiohttp.UnixConnector(path=unix_socket) if unix_socket else aiohttp.TCPConnector(force_close=True)
    )
    note = "no answer yet"
    delay = _FIRST_DELAY
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            if exited.done():
                return Readiness("exited", note)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Readiness("timeout", note)
            began = loop.time()
            if wrote is not None:
                wrote.clear()  # a line from now on, during the probe too, asks for another
            probe = asyncio.ensure_future(_probe(session, health_url, min(_PROBE_TIMEOUT, remaining)))
            waiting: set[asyncio.Future[Any]] = {probe, exited}
            done, _ = await asyncio.wait(waiting, timeout=remaining,
                                         return_when=asyncio.FIRST_COMPLETED)
            if probe in done:
                result = probe.result()
                if result is None:
                    return Readiness("ready")
                note = result
            else:
                probe.cancel()
                await asyncio.gather(probe, return_exceptions=True)
                continue  # the process exited or the deadline passed: the loop head reports which
            await _pause(exited, wrote, max(0.0, min(delay, deadline - loop.time())))
            gap = min(began + _LINE_GAP, deadline) - loop.time()
            if gap > 0:
                await asyncio.wait({exited}, timeout=gap)
            delay = min(delay * 1.5, _MAX_DELAY)


async def _pause(exited: asyncio.Future[int], wrote: asyncio.Event | None, seconds: float) -> None:
    """`seconds`, or less: until the process exits or writes a line."""
    if wrote is None:
        await asyncio.wait({exited}, timeout=seconds)
        return
    heard = asyncio.ensure_future(wrote.wait())
    waiting: set[asyncio.Future[Any]] = {exited, heard}
    try:
        await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        heard.cancel()
        await asyncio.gather(heard, return_exceptions=True)


async def _probe(session: aiohttp.ClientSession, url: str, timeout: float) -> str | None:
    """None when healthy, else a short description of what was seen."""
    try:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with session.get(url, timeout=client_timeout, allow_redirects=False) as resp:
            # the status is the answer: the body is left unread (an engine could send one without end)
            return None if resp.status == 200 else f"health check answered HTTP {resp.status}"
    except asyncio.TimeoutError:
        return "health check timed out"
    except (aiohttp.ClientError, OSError) as exc:
        return f"health check failed: {type(exc).__name__}"
