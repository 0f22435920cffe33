"""The fixtures' way of starting fake servers on 127.0.0.1: each test starts as many as it asks for, and every one
started is stopped after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@asynccontextmanager
async def started(cls: Callable[..., S]) -> AsyncIterator[Callable[..., Awaitable[S]]]:
    """A maker of started `cls(*args)` servers, all stopped on leaving."""
    made: list[S] = []

    async def make(*args: Any) -> S:
        server = cls(*args)
        await server.start()
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            await server.stop()
