"""The narrow interface every upstream kind implements, and the state shared by all of them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp

from ..config.model import ProviderConfig
from ..redact import safe_headers, scrub_body
from ..resilience import Breaker, Limiter

T = TypeVar("T")


class Reply(Protocol):
    """An upstream response whose headers have arrived. `close()` must always be called."""

    status: int
    headers: Mapping[str, str]

    async def read(self, limit: int | None = None) -> bytes:
        """The whole (decompressed) body; raises `BodyTooLarge` past `limit` bytes."""
        ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class BodyTooLarge(Exception):
    """An upstream body went past its bound (counted after decompression)."""


async def read_limited(resp: aiohttp.ClientResponse, limit: int | None) -> bytes:
    if limit is None:
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Upstream body larger than {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)


class UpstreamUnavailable(Exception):
    """The upstream cannot be used right now (disabled, engine failed to start); not the client's fault."""

    def __init__(self, reason: str, *, status: int = 503, code: str = "upstream_unavailable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


class Upstream:
    """One provider: its pooled client, breaker, limiter and outstanding-request count."""

    kind = "base"

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        p = config.policy
        self.breaker = Breaker(failures=p.breaker_failures, cooldown=p.breaker_cooldown)
        self.limiter = Limiter(limit=p.max_concurrency, max_queue=p.max_queue, timeout=p.queue_timeout)
        self.outstanding = 0

    @property
    def secrets(self) -> tuple[str, ...]:
        """What this provider is given to authenticate (its key, credential-like header values): never shown."""
        found = [self.config.api_key or ""] + [v for _, v in self.config.headers if len(v) >= 8]
        return tuple(s for s in found if s)

    @property
    def disabled_reason(self) -> str | None:
        return self.config.disabled_reason

    async def start(self) -> None:
        """Called once at application start-up."""

    async def close(self) -> None:
        """Called once at shutdown: close pooled connections."""

    async def send(self, path: str, body: dict[str, Any], raw: bytes | None, headers: Mapping[str, str],
                   stream: bool) -> Reply:
        """POST an OpenAI-shaped request. `raw` is the client's body when it can be forwarded unchanged."""
        raise NotImplementedError

    async def get(self, path: str, headers: Mapping[str, str]) -> Reply:
        raise NotImplementedError


class AiohttpReply:
    """`Reply` over an aiohttp response; optional `on_close` runs once when the reply is closed. Its headers are
    the few the router uses, rebuilt from validated values (`redact.safe_headers`); a whole body comes with the
    provider's key redacted, literal or JSON-escaped."""

    __slots__ = ("_on_close", "_resp", "_secret", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse,
                 on_close: Callable[[], Awaitable[object]] | None = None,
                 secret: str | tuple[str, ...] | None = None) -> None:
        self._resp = resp
        self.status = resp.status
        self._secret = secret
        self.headers: Mapping[str, str] = safe_headers(resp.headers, secret)
        self._on_close = on_close

    async def read(self, limit: int | None = None) -> bytes:
        return scrub_body(await read_limited(self._resp, limit), self._secret)

    def chunks(self) -> AsyncIterator[bytes]:
        return self._resp.content.iter_any()

    async def close(self) -> None:
        self._resp.close()
        cb, self._on_close = self._on_close, None
        if cb is not None:
            await cb()


if sys.version_info >= (3, 11):
    async def with_timeout(aw: Awaitable[T], seconds: float | None) -> T:
        async with asyncio.timeout(seconds):
            return await aw
else:  # pragma: no cover - Python 3.10
    async def with_timeout(aw: Awaitable[T], seconds: float | None) -> T:
        return await asyncio.wait_for(aw, seconds)
