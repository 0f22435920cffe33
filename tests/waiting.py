"""Bounded waiting on a condition (never a fixed sleep): poll a predicate until it holds or the bound passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state has no event of its own to wait on
            await asyncio.sleep(interval)

    await asyncio.wait_for(poll(), timeout)
