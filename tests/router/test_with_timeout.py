"""`with_timeout`: what `asyncio.timeout` does around one awaitable."""

from __future__ import annotations

import asyncio
import sys

import pytest

from router.upstream.base import with_timeout


async def test_an_answer_in_time_is_returned_and_a_late_one_times_out() -> None:
    assert await with_timeout(asyncio.sleep(0, "ok"), 5) == "ok"
    assert await with_timeout(asyncio.sleep(0, "ok"), None) == "ok"
    with pytest.raises(asyncio.TimeoutError):
        await with_timeout(asyncio.sleep(5), 0.01)
    task = asyncio.current_task()
    assert task is not None and (sys.version_info < (3, 11) or task.cancelling() == 0)
    assert await with_timeout(asyncio.sleep(0.02, "after"), 5) == "after"  # no cancel left pending


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await with_timeout(asyncio.sleep(5), 10)

    task = asyncio.ensure_future(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_error_inside_is_raised_as_it_is() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await with_timeout(fails(), 5)
