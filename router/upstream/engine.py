"""Local engines: a supervised worker (our MLX engine or an external command) reached over a socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import aiohttp

from engines.supervisor.types import Endpoint, EngineSupervisor, EngineUnavailable

from ..config.model import ProviderConfig
from ..errors import ApiError
from ..resilience import Breaker
from .base import AiohttpReply, Failure, Reply, Upstream, UpstreamRequest, UpstreamUnavailable, with_timeout
from .openai import client_timeout

CRASH_GRACE = 1.0  # seconds a failure waits for the supervisor to notice an engine's exit before it counts


class EngineBreaker(Breaker):
    """An engine's crash is the supervisor's to handle (it restarts the engine, with backoff): the failures it
    causes never count toward opening the breaker. The in-flight requests' resets can arrive before the
    supervisor notices the exit, so a failure is judged `CRASH_GRACE` seconds later: excused if the engine
    crashed (or was restarted) meanwhile, counted otherwise."""

    def __init__(self, upstream: EngineUpstream, failures: int, cooldown: float) -> None:
        super().__init__(failures=failures, cooldown=cooldown)
        self._upstream = upstream

    def failure(self) -> None:
        mark = self._upstream.crash_mark()
        if mark is None:
            self.release_probe()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().failure()
            return
        loop.call_later(CRASH_GRACE, self._settle, mark)

    def _settle(self, mark: int) -> None:
        if self._upstream.crash_mark() != mark:
            self.release_probe()
        else:
            super().failure()


MLX_PATHS = frozenset({"/chat/completions", "/completions"})  # what our worker serves under /v1


class EngineUpstream(Upstream):
    kind = "engine"

    def __init__(self, config: ProviderConfig, supervisor: EngineSupervisor) -> None:
        super().__init__(config)
        self.supervisor = supervisor
        self.engine = config.engine or config.name
        p = config.policy
        self.breaker = EngineBreaker(self, failures=p.breaker_failures, cooldown=p.breaker_cooldown)
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}

    def _session(self, unix_socket: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(unix_socket)
        if session is None or session.closed:
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path=unix_socket, limit=0) if unix_socket else aiohttp.TCPConnector(limit=0)
            )
            session = aiohttp.ClientSession(connector=connector, timeout=client_timeout(self.config),
                                            headers={"Content-Type": "application/json"})
            self._sessions[unix_socket] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def _lease(self) -> tuple[AbstractAsyncContextManager[Endpoint], Endpoint]:
        lease = self.supervisor.lease(self.engine)
        try:
            endpoint = await lease.__aenter__()
        except EngineUnavailable as exc:
            raise UpstreamUnavailable(f"engine {self.engine!r} is unavailable: {exc.reason}") from None
        return lease, endpoint

    async def _request(self, method: str, path: str, data: bytes | None, headers: Mapping[str, str]) -> Reply:
        lease, endpoint = await self._lease()
        try:
            session = self._session(endpoint.unix_socket)
            resp = await with_timeout(
                session.request(method, endpoint.base_url + path, data=data, headers=headers, allow_redirects=False),
                self.config.policy.timeouts.first_byte,
            )
        except BaseException as exc:
            await lease.__aexit__(type(exc), exc, exc.__traceback__)
            raise

        async def release() -> None:
            await lease.__aexit__(None, None, None)

        return AiohttpReply(resp, on_close=release, idle=self.config.policy.timeouts.idle)

    async def send(self, request: UpstreamRequest) -> Reply:
        path = request.path
        if path not in MLX_PATHS and self._kind() == "mlx":  # refused before the engine is started for nothing
            raise UpstreamUnavailable(
                f"Model {self.engine!r} is a local MLX engine, which serves chat completions and completions only, "
                f"not {path.lstrip('/')}.", status=400, code="unsupported_endpoint")
        data = request.raw if request.raw is not None else json.dumps(request.body, ensure_ascii=False).encode()
        return await self._request("POST", path, data, request.headers)


    def _kind(self) -> str | None:
        spec = self.supervisor.specs().get(self.engine)
        return spec.kind if spec is not None else None

    def classify(self, exc: BaseException) -> Failure:
        """A connection failure while the supervisor marks the engine crashed is the crash: final (the engine
        restarts on the next request) and never counted toward the breaker."""
        if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError)) and self.crashed():
            return Failure("engine_crashed", ApiError(
                502, f"Engine for {self.engine!r} crashed; it restarts on the next request.", "engine_crashed"),
                counts=False, final=True)
        return super().classify(exc)

    def crashed(self) -> bool:
        return self.supervisor.crashed(self.engine)

    def crash_mark(self) -> int | None:
        """None while the engine is marked crashed, else how often it was restarted (a crash in between changes
        it)."""
        if self.crashed():
            return None
        status = self.supervisor.states().get(self.engine)
        return status.restarts if status is not None else 0
