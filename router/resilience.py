"""Retry policy, circuit breaker and the per-provider concurrency limiter."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from .config.model import Policy

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
BREAKER_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


@dataclass(frozen=True, eq=False, slots=True)
class Admission:
    """A request `Breaker.allow` let through: `probe` when it is the half-open probe. Each probe is its own
    object, so that only the request holding the breaker's current probe can free it (`Breaker.release_probe`)."""

    probe: bool = False


ADMITTED = Admission()  # a request let through while the breaker is closed (it holds no probe)


@dataclass
class Breaker:
    """Opens after `failures` consecutive failures; after `cooldown` one probe is let through (half-open)."""

    failures: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    state: str = CLOSED
    consecutive: int = 0
    opened_at: float = 0.0
    probe: Admission | None = None  # the half-open probe in flight
    on_change: Callable[[str], None] | None = None

    @property
    def probing(self) -> bool:
        return self.probe is not None

    def allow(self) -> Admission | None:
        """None when the request is refused; else what it was let through as (the probe, when half-open)."""
        if self.state == CLOSED:
            return ADMITTED
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.cooldown:
                return None
            self._set(HALF_OPEN)
        if self.probe is not None:
            return None
        self.probe = Admission(probe=True)
        return self.probe

    def retry_after(self) -> float:
        return max(0.0, self.cooldown - (self.clock() - self.opened_at)) if self.state == OPEN else 0.0

    def success(self) -> None:
        self.consecutive = 0
        self.probe = None
        if self.state != CLOSED:
            self._set(CLOSED)

    def failure(self, admitted: Admission = ADMITTED) -> None:
        """A failure (a verdict, as `success` is: it ends any probe). `admitted`: what the failed request was let
        through as (a subclass that excuses a failure frees only the failed request's own probe)."""
        self.consecutive += 1
        self.probe = None
        if self.state == HALF_OPEN or self.consecutive >= self.failures:
            self.opened_at = self.clock()
            self._set(OPEN)

    def release_probe(self, admitted: Admission) -> None:
        """A request that ended without a verdict (e.g. the client went away) frees the probe if it holds it (still
        the current one: a verdict since ended it, and the next probe is another's); any other request, nothing."""
        if admitted is self.probe:
            self.probe = None

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)


class QueueFull(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("queue full")
        self.retry_after = retry_after


@dataclass
class Limiter:
    """At most `limit` requests at once; up to `max_queue` wait (FIFO), each at most `timeout` seconds."""

    limit: int
    max_queue: int
    timeout: float
    active: int = 0
    waiters: deque[asyncio.Future[bool]] = field(default_factory=deque)

    @property
    def queued(self) -> int:
        return len(self.waiters)

    def try_acquire(self) -> bool:
        """A slot now if one is free and nobody waits (no await: the common case costs nothing more)."""
        if self.active < self.limit and not self.waiters:
            self.active += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot. The waiter's future says True when release() hands it the slot, False when its timer ran
        out. No `asyncio.wait_for`: on Python 3.10/3.11 it returns the result when the task is cancelled in the same
        loop turn as the slot is handed over, so a client that left kept the slot and its request went upstream."""
        if self.try_acquire():
            return
        if len(self.waiters) >= self.max_queue:
            raise QueueFull(retry_after=1.0)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(fut)
        timer = loop.call_later(self.timeout, self._expire, fut)
        try:
            granted = await fut
        except asyncio.CancelledError:  # the task was cancelled: a slot handed to it goes to the next waiter
            timer.cancel()
            if fut.done() and not fut.cancelled():
                if fut.result():
                    self.release()
            else:
                fut.cancel()
                self._discard(fut)
            raise
        timer.cancel()
        if not granted:
            raise QueueFull(retry_after=1.0)

    def _expire(self, fut: asyncio.Future[bool]) -> None:
        if not fut.done():
            fut.set_result(False)
            self._discard(fut)

    def _discard(self, fut: asyncio.Future[bool]) -> None:
        try:
            self.waiters.remove(fut)
        except ValueError:
            pass

    def release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # the slot passes straight to the next waiter
                return
        self.active -= 1


def backoff_delay(attempt: int, policy: Policy, retry_after: str | None = None) -> float | None:
    """Seconds to wait before retry number `attempt` (1-based): Retry-After if given, else jittered exponential.
    None when Retry-After asks for more than `max_retry_after`: the upstream is not tried again sooner than it
    allowed, nor waited for that long (the request moves on: another replica, the fallback, or the client gets
    the answer with its Retry-After)."""
    if retry_after:
        seconds = parse_retry_after(retry_after)
        if seconds is not None:
            return seconds if seconds <= policy.max_retry_after else None
    cap = min(policy.backoff_max, policy.backoff_base * (2 ** (attempt - 1)))
    return random.uniform(cap / 2, cap)


def parse_retry_after(value: str) -> float | None:
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "inf", "1e400", "nan" are no delay anyone can wait (inf made every reply a 500: OverflowError)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
