"""The narrow interface every upstream kind implements, and the state shared by all of them.

Like httpx's transports, an upstream has one method that matters: `send(UpstreamRequest) -> Reply`. Around it,
dispatch holds a `slot()` (the provider's concurrency limit and outstanding count, always released) and asks the
upstream to judge what went wrong (`classify()` for an exception, `judge()` for a reply that is no answer), as one
`Failure` value.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Protocol, TypeVar

import aiohttp

from .. import jsoncodec
from ..config.model import ProviderConfig
from ..errors import ApiError
from ..metrics import Metrics, fast_inc
from ..overflow import ContextOverflowError, overflow_of
from ..redact import safe_headers, scrub_body, scrub_text
from ..resilience import Breaker, Limiter
from ..sse import DEFAULT_MAX_EVENT_BYTES, UpstreamTooLarge

T = TypeVar("T")


class Unknown(enum.Flag):
    """Fields of a request that an upstream may refuse (400 or 422 naming them): as ones it does not know, or (the
    limit) by a name it no longer takes; once it has, it is sent them no more (see `Refusals`,
    `UpstreamRequest.refit`)."""

    NONE = 0
    STREAM_OPTIONS = enum.auto()  # `stream_options`: the usage the router asks a stream for
    REASONING = enum.auto()  # `reasoning_content` of the history's assistant messages (the reasoning sent back)
    MAX_TOKENS = enum.auto()  # `max_tokens`, which OpenAI's reasoning models refuse: the limit goes as
    # `max_completion_tokens`


REFUSALS_MAX = 256  # models per upstream whose refusals are remembered (a wildcard route's names are the client's)


class Refusals:
    """The fields (`Unknown`) an upstream refused, by the model it was asked for (a gateway's models may differ),
    for as long as the upstream lives (a reload that changes the provider builds a new one). Bounded: past
    `REFUSALS_MAX` models, a new one's refusal is not remembered (its requests go as before: refused once each, then
    sent without)."""

    __slots__ = ("_by_model",)

    def __init__(self) -> None:
        self._by_model: dict[str | None, Unknown] = {}

    def __bool__(self) -> bool:
        return bool(self._by_model)

    def of(self, model: str | None) -> Unknown:
        return self._by_model.get(model, Unknown.NONE)

    def learn(self, model: str | None, unknown: Unknown) -> None:
        known = self._by_model
        if model in known or len(known) < REFUSALS_MAX:
            known[model] = known.get(model, Unknown.NONE) | unknown


Refit = Callable[["UpstreamRequest", Unknown], "UpstreamRequest"]
"""The request as an upstream that refuses some of the fields the router put in it (`Unknown`) is sent it: those
fields left out (the request itself when it holds none of them)."""


class UpstreamRequest(NamedTuple):
    """One OpenAI-shaped request to an upstream; each kind translates it at its own edge. Immutable (a named
    tuple: built once per request on the hot path, where a frozen dataclass costs several times more)."""

    path: str  # under the provider's base URL: "/chat/completions", "/completions", "/embeddings"
    body: dict[str, Any]
    raw: bytes | None = None  # `body` as the client's bytes, forwarded as they are when given
    headers: Mapping[str, str] = {}  # never mutated
    stream: bool = False
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES  # one event of the upstream's stream (`max_upstream_event_mb`)
    native: dict[str, Any] | None = None  # a Messages body an Anthropic upstream sends as it is (model: `body`'s)
    max_output: int | None = None  # the model entry's `max_output_tokens`: an Anthropic upstream's limit when the
    # body sets none
    refit: Refit | None = None  # how the fields the router put in are left out for an upstream that refuses them

    def for_model(self, model: str | None) -> UpstreamRequest:
        """The request for a target that names the model `model`: the client's bytes with the name replaced where
        that is safe (`with_model`), else none (the body is encoded)."""
        raw = with_model(self.raw, self.body.get("model"), model) if self.raw is not None else None
        return UpstreamRequest(self.path, {**self.body, "model": model}, raw, self.headers, self.stream,
                               self.max_event_bytes, self.native, self.max_output, self.refit)


_MODEL_KEY = b'"model"'
_MODEL_LETTER_ESCAPE = re.compile(rb"\\u00(?:6[45cdfCDF])")  # how JSON may escape m, o, d, e or l
_JSON_WS = b" \t\r\n"
OVERLOADED = frozenset({503, 529})  # the statuses that say "busy, try later" (Anthropic says 529)


def with_model(raw: bytes, old: object, new: str | None) -> bytes | None:
    """`raw`, a JSON object whose top-level "model" is `old`, with that value replaced by `new` and every other
    byte kept; None unless that is certain: the key "model" is written once in the whole body and never with an
    escape (so that one is the top-level key), and its value exactly as `jsoncodec.dumps(old)` writes it."""
    if not isinstance(old, str) or new is None or raw.count(_MODEL_KEY) != 1 or _MODEL_LETTER_ESCAPE.search(raw):
        return None
    at = raw.index(_MODEL_KEY) + len(_MODEL_KEY)
    while raw[at:at + 1] in _JSON_WS and at < len(raw):
        at += 1
    if raw[at:at + 1] != b":":
        return None
    at += 1
    while raw[at:at + 1] in _JSON_WS and at < len(raw):
        at += 1
    value = jsoncodec.dumps(old)
    if not raw.startswith(value, at):
        return None
    return raw[:at] + jsoncodec.dumps(new) + raw[at + len(value):]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one try at an upstream failed, as the upstream judged it."""

    kind: str  # the `agentgate_upstream_errors_total` label: timeout, connect, reset, protocol, too_large, ...
    error: ApiError  # what the client sees when no other try answers
    counts: bool  # toward opening the breaker (else a half-open probe is released without a verdict)
    final: bool = False  # trying the same upstream again would not help
    retry_after: str | None = None  # the upstream's Retry-After, when it sent one
    client: bool = False  # the client's error (a 4xx other than 429): answered as it is, never retried nor fallen
    # back from, as a 4xx status is


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


class UpstreamFailed(Exception):
    """A failure the upstream judged itself, as it is to be reported (e.g. a local engine's crash, which breaks the
    connection like a reset but is answered as the crash). Raised while sending or reading; `classify` returns its
    `failure`, and a stream that fails so ends with `failure.error`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error.message)
        self.failure = failure


Judge = Callable[[Exception], Awaitable[Exception]]
"""What an upstream says an exception raised while reading its reply means: the exception itself (the usual
judgment applies), or the one to raise instead (`UpstreamFailed`). It may wait a moment to tell."""


class IdleWatch:
    """An upstream body read with its gap bound (`timeouts.idle`): a read that waits more than `idle` seconds for
    the upstream's next bytes fails with a timeout (`aiohttp.ServerTimeoutError`, a `TimeoutError`). One timer for
    the whole body, moved on only when it fires, where aiohttp's own read timeout (`ClientTimeout.sock_read`)
    cancels and starts one on every packet the socket brings: a token-by-token stream's ~20 reads cost ~2 % more
    CPU that way (bench/proxy/profile_cell.py, paced). Also an async iterator over the body's chunks (each what
    has arrived by then), as `StreamReader.iter_any()`; `stop()` once the body is done with."""

    __slots__ = ("_content", "_handle", "_idle", "_judge", "_loop", "_since")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float | None, judge: Judge | None = None) -> None:
        self._content = resp.content
        self._idle = idle
        self._judge = judge  # what a failed read means, when the upstream has its own verdict (see `Judge`)
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None  # when the read now waiting for bytes began
        self._handle: asyncio.TimerHandle | None = None

    async def readany(self) -> bytes:
        """What the body holds now, or its next bytes once they come; b"" at its end."""
        content = self._content
        try:
            chunk = content.read_nowait()
            if chunk or content.at_eof():
                return chunk
            idle = self._idle
            if idle is None:
                return await content.readany()
            self._since = since = self._loop.time()
            if self._handle is None:
                self._handle = self._loop.call_at(since + idle, self._check)
            try:
                return await content.readany()
            finally:
                self._since = None
        except Exception as exc:  # (a try costs nothing until something is raised)
            judge = self._judge
            if judge is None:
                raise
            verdict = await judge(exc)
            if verdict is exc:
                raise
            raise verdict from None

    def _check(self) -> None:
        """The timer: the waiting read failed once it has waited `idle` seconds; the timer moved to when it will
        have; nothing while no read waits (the next one starts the timer again)."""
        self._handle = None
        since, idle = self._since, self._idle
        if since is None or idle is None:
            return
        due = since + idle
        if self._loop.time() >= due:
            self._content.set_exception(aiohttp.ServerTimeoutError(f"no bytes from the upstream for {idle:g} s"))
        else:
            self._handle = self._loop.call_at(due, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __aiter__(self) -> IdleWatch:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.readany()
        if not chunk:
            self.stop()
            raise StopAsyncIteration
        return chunk


async def read_limited(resp: aiohttp.ClientResponse, limit: int | None, watch: IdleWatch | None = None) -> bytes:
    """The whole body; raises `BodyTooLarge` past `limit` bytes. `watch` bounds the gaps (none: not bounded
    here)."""
    if watch is None:
        watch = IdleWatch(resp, None)
    parts: list[bytes] = []
    size = 0
    try:
        while True:  # what has arrived taken at once; a wait only when nothing has
            chunk = await watch.readany()
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge(f"Upstream body larger than {limit} bytes.")
            parts.append(chunk)
    finally:
        watch.stop()


class UpstreamUnavailable(Exception):
    """The upstream cannot be used right now (disabled, engine failed to start); not the client's fault."""

    def __init__(self, reason: str, *, status: int = 503, code: str = "upstream_unavailable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


CLOSED_REASON = "closed: a config reload replaced it, or the router is stopping"


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
        self.refused = Refusals()  # what it refused as unknown: left out of its requests from then on
        self.closed = False  # for good: see `close`
        self._gauges: ProviderGauges | None = None

    def gauges(self, metrics: Metrics) -> ProviderGauges:
        """This provider's queued and in-flight gauges in `metrics`, bound once (one registry per application). They
        are moved by amounts, not set: after a reload the retired instance of a provider and its successor share
        the series, and each setting its own count made it wrong."""
        gauges = self._gauges
        if gauges is None or gauges.metrics is not metrics:
            gauges = self._gauges = ProviderGauges(metrics, fast_inc(metrics.child(metrics.queued, self.name)),
                                                   fast_inc(metrics.child(metrics.in_flight, self.name)))
        return gauges

    @functools.cached_property
    def secrets(self) -> tuple[str, ...]:
        """What this provider is given to authenticate (its key, credential-like header values): never shown.
        Worked out once: the config of an upstream never changes (a reload builds new upstreams)."""
        return self.config.secrets

    @property
    def disabled_reason(self) -> str | None:
        """Why no request may use it: the config's reason, or that it was closed."""
        return CLOSED_REASON if self.closed else self.config.disabled_reason

    async def start(self) -> None:
        """Called once at application start-up."""

    async def close(self) -> None:
        """Called once, at shutdown or when a reload retired it: close pooled connections, for good. A request that
        still picks it skips it (`disabled_reason`); one already past that fails with `closed_error()` when it
        sends: a 503, after which its next target is tried. Subclasses call this first."""
        self.closed = True

    def closed_error(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"Provider {self.name!r} is {CLOSED_REASON}; retry the request.")

    async def send(self, request: UpstreamRequest) -> Reply:
        """POST an OpenAI-shaped request; the reply's headers have arrived when it returns."""
        raise NotImplementedError

    def slot(self, metrics: Metrics) -> Slot:
        """`async with upstream.slot(metrics)`: a place under the provider's concurrency limit (waiting in its
        queue, `QueueFull` past it), counted outstanding until released."""
        return Slot(self, metrics)

    def classify(self, exc: BaseException) -> Failure:
        """What an exception raised while sending or reading means (a timeout, a reset, a body past its bound,
        the upstream unavailable)."""
        if isinstance(exc, UpstreamFailed):
            return exc.failure
        if isinstance(exc, UpstreamUnavailable):
            return Failure(exc.code, ApiError(exc.status, exc.reason, exc.code), counts=False)
        if isinstance(exc, (BodyTooLarge, UpstreamTooLarge)):  # a body, or an event of a translated stream
            return Failure("too_large", ApiError(502, f"Upstream {self.name!r} sent a body past the bound: {exc}",
                                                 "upstream_body_too_large"), counts=True, final=True)
        kind = error_kind(exc)
        what = "timed out" if kind == "timeout" else f"failed ({kind})"
        return Failure(kind, ApiError(504 if kind == "timeout" else 502, f"Upstream {self.name!r} {what}.",
                                      f"upstream_{kind}"), counts=True)

    async def judge(self, reply: Reply, request: UpstreamRequest, body_limit: int | None) -> Failure | None:
        """None when `reply` is an answer to pass on (a 200, or a status that is the client's to see); else why
        not: a redirect (never followed: it would carry the key and the prompt to another host), 429, 5xx, or a
        stream request answered with something other than an event stream."""
        status = reply.status
        if 300 <= status < 400:
            return Failure("redirect", ApiError(
                502, f"Upstream {self.name!r} answered {status} (a redirect); the router never follows redirects: "
                "check the provider's base_url.", "upstream_redirect"), counts=False, final=True)
        if status == 429 or status >= 500:
            retry_after = reply.headers.get("Retry-After")
            detail = error_summary(await reply.read(body_limit), self.config.api_key)  # (read redacts every secret)
            limited = status == 429
            busy = status in OVERLOADED  # said so: 503 (OpenAI, vLLM, llama.cpp), 529 (Anthropic)
            return Failure("status_429" if limited else "status_5xx", ApiError(
                429 if limited else 503 if busy else 502,
                f"Upstream {self.name!r} answered {status}{': ' + detail if detail else ''}",
                "upstream_rate_limited" if limited else "upstream_overloaded" if busy else "upstream_error",
                headers={"Retry-After": retry_after} if (limited or busy) and retry_after else None),
                counts=not limited, retry_after=retry_after)
        if request.stream and status == 200:
            ctype = reply.headers.get("Content-Type", "")
            if not ctype.lower().startswith("text/event-stream"):
                return Failure("protocol", ApiError(502, f"Upstream {self.name!r} answered a stream request with "
                                                    f"{ctype or 'no content type'}, not an event stream.",
                                                    "upstream_invalid_response"), counts=True)
        return None



_ERROR_OBJECT = re.compile(rb'\s*\{\s*(?:"type"\s*:\s*"error"\s*,\s*)?"error"\s*:\s*[{"]')  # how an error answer
# begins (not "error": null), Anthropic's (`{"type": "error", "error": ...}`, a native Messages answer) too


_FAILED_FINISH = re.compile(rb'"finish_reason"\s*:\s*"(error|abort)"')  # (relay.FAILED_FINISHES)


def error_answer(name: str, body: bytes, secret: str | None) -> Failure | None:
    """A whole 200 answer that is an error object (`{"error": {...}}`, as some gateways and servers send, or an
    Anthropic error, translated or not), or a completion that finished with `"finish_reason": "error"` (OpenRouter's
    answer when generation failed part-way) or `"abort"` (vLLM's and SGLang's when the server aborted the
    request), is a failure like a 5xx: retried, fallen back from, counted by the breaker; not an answer passed on
    with status 200. An error object is looked for in the body's first bytes only (a completion never begins so)."""
    finish = None
    if _ERROR_OBJECT.match(body, 0, 64) is None and (finish := _FAILED_FINISH.search(body)) is None:
        return None
    detail = error_summary(body, secret) or (f"finish_reason {finish[1].decode()!r}" if finish else "")
    return Failure("status_5xx", ApiError(502, f"Upstream {name!r} answered 200 with an error"
                                               f"{': ' + detail if detail else ''}", "upstream_error"), counts=True)


class ProviderGauges(NamedTuple):
    metrics: Metrics
    queued: Callable[[float], None]  # add (negative: take away)
    in_flight: Callable[[float], None]  # likewise


class Slot:
    """One request's place at an upstream (a limiter slot, one outstanding request), from `async with` until
    `release()`. Leaving the block releases it, unless `keep()` handed it to whoever holds the reply (dispatch's
    `Opened`, whose `close()` releases it)."""

    __slots__ = ("_held", "_kept", "_metrics", "_up")

    def __init__(self, upstream: Upstream, metrics: Metrics) -> None:
        self._up = upstream
        self._metrics = metrics
        self._held = self._kept = False

    async def __aenter__(self) -> Slot:
        up = self._up
        gauges = up.gauges(self._metrics)  # the series exist (at 0) from the first request on
        if not up.limiter.try_acquire():  # full: wait in the queue, the queue gauge showing it
            gauges.queued(1)
            try:
                await up.limiter.acquire()
            finally:
                gauges.queued(-1)
        up.outstanding += 1
        self._held = True
        gauges.in_flight(1)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if not self._kept:
            self.release()

    def keep(self) -> None:
        self._kept = True

    def release(self) -> None:
        if self._held:
            self._held = False
            up = self._up
            up.outstanding -= 1
            up.limiter.release()
            up.gauges(self._metrics).in_flight(-1)


SEND_ERRORS = (BodyTooLarge, UpstreamTooLarge, UpstreamUnavailable, UpstreamFailed, aiohttp.ClientError,
               asyncio.TimeoutError, OSError)
"""What sending to an upstream or reading its reply may raise; `Upstream.classify` says what each means."""


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError)):
        return "reset"
    return "protocol"


def error_summary(body: bytes, secret: str | None = None) -> str:
    """A short, safe summary of an upstream error body (the provider's key redacted before it is cut short)."""
    if secret:
        body = body.replace(secret.encode(), b"[redacted]")
    try:
        msg = error_message(json.loads(body))
        return msg[:300] if msg else ""
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body[:200].decode("utf-8", "replace").strip()


ERROR_MESSAGE_MAX = 1000  # characters of an upstream's error message passed on to the client


def error_message(doc: Any, depth: int = 0) -> str | None:
    """The readable message of an upstream's error document, in the shapes servers write them: OpenAI's
    `{"error": {"message"}}`, `{"error": "..."}`, `{"message": "..."}` (vLLM before 0.10, SGLang), Gemini's OpenAI
    endpoint's array `[{"error": {...}}]`, Mistral's `message` as a list of validation errors, FastAPI's
    `{"detail": [{"loc", "msg"}]}` or `{"detail": "..."}`. None when it holds none (not cut short here)."""
    if depth > 3:
        return None
    if isinstance(doc, str):
        return doc.strip() or None
    if isinstance(doc, list):
        for item in doc[:4]:
            if (msg := error_message(item, depth + 1)) is not None:
                return msg
        return None
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if isinstance(err, (dict, list, str)) and (msg := error_message(err, depth + 1)) is not None:
        return msg
    for key in ("message", "detail", "msg", "error_message"):
        if (msg := _readable(doc.get(key), depth)) is not None:
            return msg
    return None


def _readable(value: Any, depth: int) -> str | None:
    """A message member as text: a string, or a list of validation errors (`{"loc", "msg"}` each, as pydantic
    writes them) joined."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return error_message(value, depth + 1)
    if not isinstance(value, list):
        return None
    parts: list[str] = []
    for item in value[:10]:
        if isinstance(item, dict) and isinstance(item.get("msg"), str):
            loc = item.get("loc")
            where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
            parts.append(f"{where}: {item['msg']}" if where else item["msg"])
        elif (text := _readable(item, depth + 1) if depth < 3 else None) is not None:
            parts.append(text)
    return "; ".join(parts) or None


# what an error's `type` or `code` says when it names no status: Anthropic's types (translated events), OpenAI's
# rate-limit code (its type is "requests" or "tokens")
_NAMED_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "rate_limit_exceeded": 429}


def error_status(err: Any) -> int | None:
    """The HTTP status an upstream's error object names (`code`, else `status`, a number from 400 to 599; or a
    type or code that says busy or rate limited)."""
    if not isinstance(err, dict):
        return None
    for key in ("code", "status"):
        value = err.get(key)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == 3:
            value = int(value)
        if type(value) is int and 400 <= value <= 599:
            return value
    for key in ("type", "code"):
        named = err.get(key)
        if isinstance(named, str) and (status := _NAMED_STATUS.get(named)) is not None:
            return status
    return None


def event_failure(name: str, err: Any, secrets: tuple[str, ...]) -> Failure:
    """An upstream error event that came before the stream's first chunk (nothing reached the client): a failure
    like the status its error names (`code`): a 429 or a 5xx is retried and fallen back from, a 4xx is the client's
    (the upstream's message, with that status); without one, a failure like a 5xx."""
    msg = error_message(err)
    detail = scrub_text(msg, secrets)[:ERROR_MESSAGE_MAX] if msg else ""
    status = error_status(err)
    said = f"Upstream {name!r} answered with an error event{': ' + detail if detail else ''}"
    if status == 429:
        return Failure("status_429", ApiError(429, said, "upstream_rate_limited"), counts=False)
    if status in (401, 403):
        return Failure("error_event", ApiError(502, f"Upstream {name!r} refused the configured credentials "
                                               f"({status}).", "upstream_auth"), counts=False, client=True)
    if detail and (status is None or status < 500) and (overflow := overflow_of(status or 400, err, detail)):
        # (one that names no status too: OpenAI's `code` is "context_length_exceeded", not a number)
        return Failure("error_event", ContextOverflowError(overflow, detail, name), counts=False, client=True)
    if status is not None and status < 500:
        code = err.get("code") if isinstance(err, dict) else None
        etype = err.get("type") if isinstance(err, dict) else None
        code = scrub_text(code, secrets)[:ERROR_MESSAGE_MAX] if isinstance(code, str) and not code.isdigit() \
            else "upstream_error"  # (the provider's key, echoed anywhere in the error, is redacted)
        etype = scrub_text(etype, secrets)[:ERROR_MESSAGE_MAX] if isinstance(etype, str) and etype else None
        return Failure("error_event", ApiError(status, detail or said, code, type=etype), counts=False, client=True)
    busy = status in OVERLOADED
    return Failure("error_event", ApiError(503 if busy else 502, said,
                                           "upstream_overloaded" if busy else "upstream_error"), counts=True)


def mid_stream_error(name: str, err: Any, detail: str) -> ApiError:
    """An upstream error event after the stream's first chunk went to the client (the stream ends with it), named
    as `event_failure` names one before it: rate limited a 429 and busy a 503 (Anthropic's clients read
    `rate_limit_error` and `overloaded_error` from them, and wait before they try again), a context overflow as each
    dialect's clients recognise it (Claude Code compacts on it), anything else a 502. `detail`: the error's
    message, redacted."""
    said = f"Upstream {name!r} failed mid-stream: {detail}"
    status = error_status(err)
    if status == 429:
        return ApiError(429, said, "upstream_rate_limited")
    if status in OVERLOADED:
        return ApiError(503, said, "upstream_overloaded")
    if detail and (status is None or status < 500) and (overflow := overflow_of(status or 400, err, detail)):
        return ContextOverflowError(overflow, detail)
    return ApiError(502, said, "upstream_error_mid_stream")


class AiohttpReply:
    """`Reply` over an aiohttp response; optional `on_close` runs once when the reply is closed. Its headers are
    the few the router uses, rebuilt from validated values (`redact.safe_headers`); a whole body comes with the
    provider's key redacted, literal or JSON-escaped."""

    __slots__ = ("_on_close", "_resp", "_secret", "_watch", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse,
                 on_close: Callable[[], Awaitable[object]] | None = None,
                 secret: str | tuple[str, ...] | None = None, idle: float | None = None,
                 judge: Judge | None = None) -> None:
        self._resp = resp
        self.status = resp.status
        self._secret = secret
        self.headers: Mapping[str, str] = safe_headers(resp.headers, secret)
        self._on_close = on_close
        self._watch = IdleWatch(resp, idle, judge)  # `idle` bounds the gaps in the body (see client_timeout)

    async def read(self, limit: int | None = None) -> bytes:
        return scrub_body(await read_limited(self._resp, limit, self._watch), self._secret)

    def chunks(self) -> AsyncIterator[bytes]:
        return self._watch  # the same iterator each time: a later one continues an earlier one

    async def close(self) -> None:
        self._watch.stop()
        self._resp.close()
        cb, self._on_close = self._on_close, None
        if cb is not None:
            await cb()


class _Expiry:
    """The timer callback of `with_timeout`: cancels the task and remembers it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


if sys.version_info >= (3, 11):
    async def with_timeout(aw: Awaitable[T], seconds: float | None) -> T:
        """`async with asyncio.timeout(seconds): return await aw`, at a third of its cost on the request path (one
        timer and one small object): the same cancel-then-`TimeoutError`, and a cancel from elsewhere stays a
        cancel (the task's cancel count decides, as in `asyncio.Timeout.__aexit__`)."""
        if seconds is None:
            return await aw
        loop = asyncio.get_running_loop()  # once: each look-up is a getpid() system call (CPython 3.11)
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("with_timeout must be used inside a task")
        cancelling = task.cancelling()
        expiry = _Expiry(task)
        handle = loop.call_later(seconds, expiry)
        try:
            result = await aw
        except BaseException as exc:
            handle.cancel()
            if expiry.fired and task.uncancel() <= cancelling and isinstance(exc, asyncio.CancelledError):
                raise TimeoutError from exc
            raise
        handle.cancel()
        if expiry.fired:
            task.uncancel()
        return result
else:  # pragma: no cover - Python 3.10
    async def with_timeout(aw: Awaitable[T], seconds: float | None) -> T:
        """The timer of the 3.11 version, not `asyncio.wait_for`: on 3.10 that returns the response when the task is
        cancelled in the same loop turn as the response arrives, so a client that left had its request go on."""
        if seconds is None:
            return await aw
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("with_timeout must be used inside a task")
        expiry = _Expiry(task)
        handle = loop.call_later(seconds, expiry)
        try:
            return await aw
        except asyncio.CancelledError as exc:
            if expiry.fired:
                raise asyncio.TimeoutError from exc
            raise
        finally:
            handle.cancel()
