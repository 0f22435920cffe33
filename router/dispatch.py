"""Send one request along its route: replicas by least outstanding, retries before the first byte,
Retry-After, circuit breakers, concurrency limits, then the fallback chain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .config.model import Target
from .errors import ApiError
from .exchange import Exchange
from .metrics import Metrics
from .resilience import QueueFull, backoff_delay
from .routing import Hop, Route
from .runtime import Runtime
from .upstream.base import BodyTooLarge, Reply, Upstream, UpstreamUnavailable

log = logging.getLogger("agentgate")


@dataclass(slots=True)
class Opened:
    """A successful upstream answer: status and headers known, and the first chunk (stream) or body read."""

    reply: Reply
    upstream: Upstream
    hop: Hop
    target: Target
    first: bytes  # stream: the first chunk (b"" if the upstream sent none); else the whole body
    metrics: Metrics
    _closed: bool = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.reply.close()
        finally:
            _release(self.upstream, self.metrics)


def _release(up: Upstream, metrics: Metrics) -> None:
    up.outstanding -= 1
    up.limiter.release()
    metrics.child(metrics.in_flight, up.name).set(up.outstanding)


def _pick(rt: Runtime, hop: Hop, skip: set[str]) -> tuple[Upstream, Target] | None:
    """The usable replica with the fewest outstanding requests (config order breaks ties)."""
    best: tuple[Upstream, Target] | None = None
    for t in hop.targets:
        up = rt.upstreams[t.provider]
        if up.disabled_reason or t.provider in skip:
            continue
        if best is None or up.outstanding < best[0].outstanding:
            best = (up, t)
    return best


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError)):
        return "reset"
    return "protocol"


async def dispatch(rt: Runtime, metrics: Metrics, ex: Exchange, route: Route, body: dict[str, Any],
                   raw: bytes, path: str, stream: bool, headers: Mapping[str, str]) -> Opened:
    last: ApiError | None = None
    ex.model = ex.model or route.model.name  # the entry asked for, until one answers (a metrics label, bounded)
    for hop_index, hop in enumerate(route.hops):
        if hop_index:
            ex.fallbacks += 1
            metrics.child(metrics.fallbacks, route.hops[hop_index - 1].model.name, hop.model.name).inc()
        attempt = 0
        skip: set[str] = set()  # replicas whose breaker refused: try the others
        while True:
            picked = _pick(rt, hop, skip)
            if picked is None:
                last = last or _unusable(rt, route)
                break
            up, target = picked
            if not up.breaker.allow():
                skip.add(up.name)
                wait = up.breaker.retry_after()
                last = ApiError(503, f"Provider {up.name!r} is cooling down after repeated failures.",
                                "circuit_open", headers={"Retry-After": str(max(1, round(wait)))})
                continue
            try:
                opened, retry_after, last = await _attempt(up, target, hop, metrics, ex, route, body, raw, path,
                                                           stream, headers, rt.config.server.max_upstream_body_bytes)
            except QueueFull as full:
                up.breaker.release_probe()
                last = ApiError(429, f"Too many requests queued for provider {up.name!r}; retry shortly.",
                                "queue_full", headers={"Retry-After": str(max(1, round(full.retry_after)))})
                break
            if opened is not None:
                return opened
            attempt += 1
            if attempt > up.config.policy.retries or (last is not None and last.code in _FINAL_CODES):
                break
            ex.retries += 1
            metrics.child(metrics.retries, up.name).inc()
            await asyncio.sleep(backoff_delay(attempt, up.config.policy, retry_after))
    assert last is not None
    raise last


_FINAL_CODES = frozenset({"engine_crashed", "upstream_body_too_large", "upstream_redirect"})  # retrying would not help


def _unusable(rt: Runtime, route: Route) -> ApiError:
    """The model the client asked for (not a fallback's or a wildcard's entry name), with every hop's reason."""
    reasons: list[str] = []
    for hop in route.hops:
        via = "" if hop.model is route.model else f"fallback {hop.model.name!r} via "
        for t in hop.targets:
            why = rt.upstreams[t.provider].disabled_reason
            if why and f"{via}{t.provider}: {why}" not in reasons:
                reasons.append(f"{via}{t.provider}: {why}")
    name = route.requested if len(route.requested) <= 200 else route.requested[:200] + "..."
    return ApiError(503, f"Model {name!r} is unavailable ({'; '.join(reasons) or 'no usable provider'}).",
                    "model_unavailable")


async def _attempt(up: Upstream, target: Target, hop: Hop, metrics: Metrics, ex: Exchange, route: Route,
                   body: dict[str, Any], raw: bytes, path: str, stream: bool,
                   headers: Mapping[str, str], body_limit: int | None = None,
                   ) -> tuple[Opened | None, str | None, ApiError | None]:
    """One try against one upstream. Returns (opened, retry_after, error)."""
    queued = metrics.child(metrics.queued, up.name)
    queued.set(up.limiter.queued + 1)
    try:
        await up.limiter.acquire()
    finally:
        queued.set(up.limiter.queued)
    up.outstanding += 1
    metrics.child(metrics.in_flight, up.name).set(up.outstanding)
    if target.model == route.requested:
        payload, payload_raw = body, raw or None  # b"": the caller has no client bytes to forward
    else:
        payload, payload_raw = {**body, "model": target.model}, None
    ex.provider, ex.upstream_model, ex.model = up.name, target.model or "", hop.model.name
    reply: Reply | None = None
    try:
        reply = await up.send(path, payload, payload_raw, headers, stream)
        status = reply.status
        if 300 <= status < 400:  # never followed: it would carry the key and the prompt to another host
            await reply.close()
            reply = None
            _release(up, metrics)
            up.breaker.release_probe()
            metrics.child(metrics.upstream_errors, up.name, "redirect").inc()
            return None, None, ApiError(502, f"Upstream {up.name!r} answered {status} (a redirect); the router "
                                        "never follows redirects: check the provider's base_url.",
                                        "upstream_redirect")
        if status == 429 or status >= 500:
            retry_after = reply.headers.get("Retry-After")
            detail = _upstream_message(await reply.read(body_limit), up.config.api_key)
            await reply.close()
            reply = None
            _release(up, metrics)
            kind = "status_429" if status == 429 else "status_5xx"
            metrics.child(metrics.upstream_errors, up.name, kind).inc()
            if status >= 500:
                up.breaker.failure()
            else:
                up.breaker.release_probe()
            return None, retry_after, ApiError(
                429 if status == 429 else 502,
                f"Upstream {up.name!r} answered {status}{': ' + detail if detail else ''}",
                "upstream_rate_limited" if status == 429 else "upstream_error",
                headers={"Retry-After": retry_after} if status == 429 and retry_after else None)
        if stream and status == 200:
            ctype = reply.headers.get("Content-Type", "")
            if not ctype.lower().startswith("text/event-stream"):
                await reply.close()
                reply = None
                _release(up, metrics)
                up.breaker.failure()
                metrics.child(metrics.upstream_errors, up.name, "protocol").inc()
                return None, None, ApiError(502, f"Upstream {up.name!r} answered a stream request with "
                                            f"{ctype or 'no content type'}, not an event stream.",
                                            "upstream_invalid_response")
            first = b""
            async for chunk in reply.chunks():
                if chunk:
                    first = chunk
                    break
        else:
            first = await reply.read(body_limit)
        up.breaker.success()
        return Opened(reply, up, hop, target, first, metrics), None, None
    except asyncio.CancelledError:
        up.breaker.release_probe()
        if reply is not None:
            await reply.close()
        _release(up, metrics)
        raise
    except BodyTooLarge as exc:
        if reply is not None:
            await reply.close()
        _release(up, metrics)
        up.breaker.failure()
        metrics.child(metrics.upstream_errors, up.name, "too_large").inc()
        return None, None, ApiError(502, f"Upstream {up.name!r} sent a body past the bound: {exc}",
                                    "upstream_body_too_large")
    except UpstreamUnavailable as exc:
        _release(up, metrics)
        up.breaker.release_probe()
        metrics.child(metrics.upstream_errors, up.name, exc.code).inc()
        return None, None, ApiError(exc.status, exc.reason, exc.code)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        if reply is not None:
            await reply.close()
        _release(up, metrics)
        up.breaker.failure()
        kind = _error_kind(exc)
        metrics.child(metrics.upstream_errors, up.name, kind).inc()
        crashed = isinstance(up, _engine_type()) and up.crashed()
        if crashed:
            return None, None, ApiError(502, f"Engine for {hop.model.name!r} crashed; it restarts on the next "
                                        "request.", "engine_crashed")
        what = "timed out" if kind == "timeout" else f"failed ({kind})"
        return None, None, ApiError(504 if kind == "timeout" else 502,
                                    f"Upstream {up.name!r} {what}.", f"upstream_{kind}")


def _engine_type() -> type:
    from .upstream.engine import EngineUpstream

    return EngineUpstream


def _upstream_message(body: bytes, secret: str | None = None) -> str:
    """A short, safe summary of an upstream error body (the provider's key redacted before it is cut short)."""
    import json

    if secret:
        body = body.replace(secret.encode(), b"[redacted]")
    try:
        doc = json.loads(body)
        err = doc.get("error") if isinstance(doc, dict) else None
        msg = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
        return str(msg)[:300] if msg else ""
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace").strip()
