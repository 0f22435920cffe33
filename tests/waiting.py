"""Bounded waiting (never a fixed sleep): poll a predicate until it holds, or read a process's output until a line
matches, within a bound."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state has no event of its own to wait on
            await asyncio.sleep(interval)

    await asyncio.wait_for(poll(), timeout)


async def line_matching(stream: asyncio.StreamReader, pattern: str, lines: list[str],
                        timeout: float = 20.0) -> re.Match[str]:
    """Read lines from `stream` (appending each to `lines`) until one matches `pattern`; fails on end of output."""
    while True:
        raw = await asyncio.wait_for(stream.readline(), timeout)
        assert raw, "the process exited early:\n" + "\n".join(lines)
        lines.append(raw.decode().rstrip())
        found = re.search(pattern, lines[-1])
        if found:
            return found
