"""Local engines: a supervised worker (our MLX engine or an external command) reached over a socket."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import aiohttp

from engines.supervisor.types import Endpoint, EngineSupervisor, EngineUnavailable

from .. import jsoncodec
from ..config.model import ProviderConfig
from ..custom_tools import functions_request
from ..dialects.common import without_images
from ..errors import ApiError
from ..redact import scrub_text
from ..resilience import ADMITTED, Admission, Breaker
from .base import (
    AiohttpReply,
    Failure,
    Reply,
    Upstream,
    UpstreamFailed,
    UpstreamRequest,
    UpstreamUnavailable,
    with_timeout,
)
from .openai import client_timeout

CRASH_GRACE = 1.0  # seconds a failure waits for the supervisor to notice an engine's exit before it counts
LOG = logging.getLogger("agentgate.engine")
BROKEN = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError)
"""A connection that broke (refused, reset, closed, a body cut short): what an engine's process dying causes."""


def undelivered(exc: BaseException) -> bool:
    """Whether `exc` proves the request never reached the engine whole, so that it ran nowhere: the connection
    could not be made (refused, the socket gone), the write met a closed peer (EPIPE), or the peer closed with
    bytes of it unread (ECONNRESET). A connection that simply closed (EOF) proves nothing: the engine may have
    read the request and died working on it (an in-flight request, answered as the crash). Over TCP a write to a
    dead peer succeeds locally and the break reads as a close, so there a request that races a crash is answered
    as the crash, not sent again."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return True
    if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
        return True
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET)


class EngineBreaker(Breaker):
    """An engine's crash is the supervisor's to handle (it restarts the engine, with backoff): the failures it
    causes never count toward opening the breaker. The in-flight requests' resets can arrive before the
    supervisor notices the exit, so a failure is judged `CRASH_GRACE` seconds later: excused if the engine
    crashed (or was restarted) meanwhile, counted otherwise. A success in between still comes after the failure:
    a failure judged after a success (any success since it happened) is not counted, so that only failures with no
    success between them add up, as they do for any other provider."""

    def __init__(self, upstream: EngineUpstream, failures: int, cooldown: float) -> None:
        super().__init__(failures=failures, cooldown=cooldown)
        self._upstream = upstream
        self._successes = 0  # how many successes so far: a failure judged later counts only if none came since

    def success(self) -> None:
        self._successes += 1
        super().success()

    def failure(self, admitted: Admission = ADMITTED) -> None:
        mark = self._upstream.crash_mark()
        if mark is None:
            self.release_probe(admitted)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().failure(admitted)
            return
        loop.call_later(CRASH_GRACE, self._settle, mark, self._successes, admitted)

    def _settle(self, mark: int, successes: int, admitted: Admission) -> None:
        if self._successes != successes:
            return  # a later success closed the breaker and reset the count: this failure is behind it
        if self._upstream.crash_mark() != mark:
            self.release_probe(admitted)  # excused: no verdict (the failed request's own probe is freed)
        else:
            super().failure(admitted)


def _may_hold_images(request: UpstreamRequest) -> bool:
    """Whether a chat request may hold an image part (a local engine reads text only: each becomes a short text
    placeholder, as the Messages and Responses routes make them, see `without_images`). One look at the client's
    bytes when they are sent as they are."""
    if not isinstance(request.body.get("messages"), list):
        return False
    if request.raw is not None:
        return b"image_url" in request.raw
    return any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in request.body["messages"])


def _text_only(request: UpstreamRequest) -> UpstreamRequest:
    """A chat request with its images as text placeholders (this engine's copy only: another target of the route,
    a fallback, gets the images)."""
    if not _may_hold_images(request):
        return request
    messages, count = without_images(request.body["messages"])
    return request._replace(body={**request.body, "messages": messages}, raw=None) if count else request


def _functions_only(request: UpstreamRequest) -> UpstreamRequest:
    """A chat request with its `custom` (free-form) tools, the custom calls in its history and a custom
    `tool_choice` as functions of one string `input` (`custom_tools.functions_request`): an engine's chat template
    and tool-call parser know functions only. Repair maps the model's calls to them back to custom calls. One look
    at the client's bytes when they are sent as they are."""
    if request.raw is not None and b"custom" not in request.raw:
        return request
    body = functions_request(request.body)
    return request if body is None else request._replace(body=body, raw=None)


MLX_PATHS = frozenset({"/chat/completions", "/completions"})  # what our worker serves under /v1
CONTINUE_FINAL = {"continue_final_message": True, "add_generation_prompt": False}
"""What asks a chat request's engine to continue its last message, the assistant's, instead of answering a new turn
(vLLM's chat parameters, which our worker takes)."""


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
            if self.closed:  # never opened again: nothing would close it
                raise self.closed_error()
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path=unix_socket, limit=0) if unix_socket else aiohttp.TCPConnector(limit=0)
            )
            session = aiohttp.ClientSession(connector=connector, timeout=client_timeout(self.config),
                                            headers={"Content-Type": "application/json"})
            self._sessions[unix_socket] = session
        return session

    async def close(self) -> None:
        await super().close()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()

    async def _lease(self) -> tuple[AbstractAsyncContextManager[Endpoint], Endpoint]:
        lease = self.supervisor.lease(self.engine)
        try:
            endpoint = await lease.__aenter__()
        except EngineUnavailable as exc:
            reason = scrub_text(exc.reason, self.secrets)  # (what it printed as it failed: its credentials too)
            raise UpstreamUnavailable(f"engine {self.engine!r} is unavailable: {reason}") from None
        return lease, endpoint

    async def _request(self, method: str, path: str, data: bytes | None, headers: Mapping[str, str]) -> Reply:
        """Send on a leased engine. When the connection breaks because the engine's process died, the failure is
        the crash (`UpstreamFailed`, 502 engine_crashed); when the request provably never reached the process (see
        `undelivered`), it is sent once more, to the engine the next lease restarts: a request that races a crash
        the supervisor has not noticed yet is served, as one sent a moment later would be."""
        for attempt in range(2):
            lease, endpoint = await self._lease()
            try:
                session = self._session(endpoint.unix_socket)
                resp = await with_timeout(
                    session.request(method, endpoint.base_url + path, data=data, headers=headers,
                                    allow_redirects=False),
                    self.config.policy.timeouts.first_byte,
                )
            except BaseException as exc:
                await lease.__aexit__(type(exc), exc, exc.__traceback__)
                if not isinstance(exc, Exception) or not await self._died(endpoint, exc):
                    raise
                if attempt == 0 and undelivered(exc):
                    LOG.info("engine %s: a request met the engine's crash before it was delivered; sending it to "
                             "the restarted engine", self.engine, extra={"engine": self.engine})
                    continue
                raise UpstreamFailed(self._crash()) from None
            break

        async def release() -> None:
            await lease.__aexit__(None, None, None)

        async def judge(exc: Exception) -> Exception:
            return UpstreamFailed(self._crash()) if await self._died(endpoint, exc) else exc

        return AiohttpReply(resp, on_close=release, idle=self.config.policy.timeouts.idle, judge=judge)

    async def _died(self, endpoint: Endpoint, exc: Exception) -> bool:
        """Whether `exc`, a failure talking to the engine instance at `endpoint`, is that instance's crash. Only a
        broken connection can be; the supervisor is given `CRASH_GRACE` seconds to notice the exit (the break
        arrives first), unless it sees the instance's process alive (then it is an ordinary failure, answered at
        once). Costs nothing on the success path, and a timeout is never waited on."""
        if not isinstance(exc, BROKEN) or isinstance(exc, asyncio.TimeoutError):
            return False
        return await self.supervisor.crashed_under(self.engine, endpoint, CRASH_GRACE)

    def _crash(self) -> Failure:
        return Failure("engine_crashed", ApiError(
            502, f"Engine for {self.engine!r} crashed; it restarts on the next request.", "engine_crashed"),
            counts=False, final=True)

    async def send(self, request: UpstreamRequest) -> Reply:
        path = request.path
        if path not in MLX_PATHS and self._kind() == "mlx":  # refused before the engine is started for nothing
            raise UpstreamUnavailable(
                f"Model {self.engine!r} is a local MLX engine, which serves chat completions and completions only, "
                f"not {path.lstrip('/')}.", status=400, code="unsupported_endpoint")
        if path == "/chat/completions":
            request = _functions_only(_text_only(request))
        data = request.raw if request.raw is not None else jsoncodec.dumps(request.body)
        return await self._request("POST", path, data, request.headers)

    def continues_final_message(self) -> bool:
        """Whether the engine continues a final assistant message asked to (`CONTINUE_FINAL`): our MLX worker does;
        the server an external command runs is not known to (some answer a new turn)."""
        return self._kind() == "mlx"

    def _kind(self) -> str | None:
        spec = self.supervisor.specs().get(self.engine)
        return spec.kind if spec is not None else None

    def classify(self, exc: BaseException) -> Failure:
        """A connection failure while the supervisor marks the engine crashed is the crash: final (the engine
        restarts on the next request) and never counted toward the breaker."""
        if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError)) and self.crashed():
            return self._crash()
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
