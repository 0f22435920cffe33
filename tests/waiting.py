"""Bounded waiting (never a fixed sleep): poll a predicate until it holds, read a process's output until a line
matches, or run a blocking call in a thread of its own, within a bound."""

from __future__ import annotations

import asyncio
import re
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


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


async def in_own_thread(fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
    """`fn(*args)` in a new thread, awaited within `timeout`. Never the loop's default executor: the tests share one
    loop for the whole session, and a call queued behind that pool's few threads (busy with an engine's renders, a
    store's writes or a subprocess) could wait out its bound without having started. On a timeout the thread's
    stack is in the error: where the call was, not only that it was late."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="own-thread")
    try:
        future = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            frames = sys._current_frames()
            stacks = ["".join(traceback.format_stack(frames[t.ident]))
                      for t in list(pool._threads) if t.ident in frames]
            raise AssertionError(f"{getattr(fn, '__name__', fn)} still running after {timeout} s:\n"
                                 + "\n".join(stacks)) from None
    finally:
        pool.shutdown(wait=False)
