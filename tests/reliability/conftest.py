"""Fixtures of the reliability suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.reliability.support import ContentUpstream


@pytest.fixture
async def content_upstreams() -> AsyncIterator[Callable[..., Awaitable[ContentUpstream]]]:
    started: list[ContentUpstream] = []

    async def make(name: str = "fake", *, faults: bool = True) -> ContentUpstream:
        up = ContentUpstream(name, faults=faults)
        await up.start()
        started.append(up)
        return up

    yield make
    for up in started:
        up.release.set()
        await up.stop()
