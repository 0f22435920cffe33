"""Send one request along its route: replicas by least outstanding, retries before the first byte,
Retry-After, circuit breakers, concurrency limits, then the fallback chain."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from .config.model import Target
from .context import RequestContext
from .errors import ApiError
from .live_config import LiveConfig
from .resilience import CLOSED, QueueFull, backoff_delay
from .routing import Hop
from .upstream.base import SEND_ERRORS, Failure, Reply, Slot, Upstream, UpstreamRequest, error_answer

log = logging.getLogger("agentgate")


@dataclass(slots=True)
class Opened:
    """A successful upstream answer: status and headers known, and the first chunk (stream) or body read. It holds
    the upstream's slot until `close()`."""

    reply: Reply
    upstream: Upstream
    hop: Hop
    target: Target
    first: bytes  # stream: the first chunk; else the whole body
    slot: Slot
    probe: bool = False  # a stream that is its breaker's half-open probe (see `close`)
    _closed: bool = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.probe:  # a probe's stream that got no verdict (the client left, an upstream error event) frees
            self.upstream.breaker.release_probe()  # the probe (after its verdict: nothing to free)
        try:
            await self.reply.close()
        finally:
            self.slot.release()


def _pick(rt: LiveConfig, hop: Hop, skip: set[str], failed: dict[str, int] | None) -> tuple[Upstream, Target] | None:
    """The usable replica that failed least often for this request (`failed`: how often each did), then one with a
    free concurrency slot over one that would queue, then the one with the fewest outstanding requests (config order
    breaks ties): a retry goes to a replica that has not failed yet, a request to a replica that can take it now."""
    targets = hop.targets
    if len(targets) == 1:  # (the common case: one provider)
        t = targets[0]
        up = rt.upstreams[t.provider]
        return None if up.disabled_reason or t.provider in skip else (up, t)
    best: tuple[Upstream, Target] | None = None
    best_key = (0, False, 0)
    for t in targets:
        up = rt.upstreams[t.provider]
        if up.disabled_reason or t.provider in skip:
            continue
        limiter = up.limiter
        key = (failed.get(t.provider, 0) if failed else 0,
               limiter.active >= limiter.limit or bool(limiter.waiters), up.outstanding)
        if best is None or key < best_key:
            best, best_key = (up, t), key
    return best


CIRCUIT_RETRY_AFTER_MAX = 5.0  # seconds: the Retry-After of a `circuit_open` answer


async def dispatch(ctx: RequestContext, request: UpstreamRequest) -> Opened:
    """The first answer along the route; raises the last `ApiError` when no hop answered. `request` names the
    model the client asked for; each target gets it under its own model name."""
    ex, route, metrics = ctx.exchange, ctx.route, ctx.metrics
    last: ApiError | None = None
    ex.model = ex.model or route.model.name  # the entry asked for, until one answers (a metrics label, bounded)
    for hop_index, hop in enumerate(route.hops):
        if hop_index:
            ex.fallbacks += 1
            metrics.child(metrics.fallbacks, route.hops[hop_index - 1].model.name, hop.model.name).inc()
        attempt = 0
        skip: set[str] = set()  # replicas whose breaker refused: try the others
        failed: dict[str, int] | None = None  # replica: its failures for this request (made at the first)
        ready: dict[str, float] = {}  # replica: when it may be tried again (its backoff, its Retry-After)
        while True:
            picked = _pick(ctx.runtime, hop, skip, failed)
            if picked is None:
                last = last or _unusable(ctx)
                break
            up, target = picked
            if failed and (wait := ready.get(up.name, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # a replica tried again (no other is left that has not failed)
            if not up.breaker.allow():
                skip.add(up.name)
                # a client told to wait the whole cooldown waited it out on every retry (Codex: minutes before
                # it said anything, where the upstream itself fails it in seconds): a few seconds at most
                wait = min(up.breaker.retry_after(), CIRCUIT_RETRY_AFTER_MAX)
                last = ApiError(503, f"Provider {up.name!r} is cooling down after repeated failures.",
                                "circuit_open", headers={"Retry-After": str(max(1, round(wait)))})
                continue
            try:
                outcome = await _attempt(ctx, up, hop, target, request, up.breaker.state != CLOSED)
            except QueueFull as full:  # another replica of the hop may still take it (else the next hop)
                up.breaker.release_probe()
                skip.add(up.name)
                last = ApiError(429, f"Too many requests queued for provider {up.name!r}; retry shortly.",
                                "queue_full", headers={"Retry-After": str(max(1, round(full.retry_after)))})
                continue
            if isinstance(outcome, Opened):
                return outcome
            last = outcome.error
            attempt += 1
            if attempt > up.config.policy.retries or outcome.final:
                break
            delay = backoff_delay(attempt, up.config.policy, outcome.retry_after)
            if delay is None:  # it asked to wait past max_retry_after: not tried again for this request
                skip.add(up.name)
                continue
            ex.retries += 1
            metrics.child(metrics.retries, up.name).inc()
            if failed is None:
                failed = {}
            failed[up.name] = failed.get(up.name, 0) + 1
            ready[up.name] = time.monotonic() + delay
    assert last is not None
    raise last


def _unusable(ctx: RequestContext) -> ApiError:
    """The model the client asked for (not a fallback's or a wildcard's entry name), with every hop's reason."""
    route, upstreams = ctx.route, ctx.runtime.upstreams
    reasons: list[str] = []
    for hop in route.hops:
        via = "" if hop.model is route.model else f"fallback {hop.model.name!r} via "
        for t in hop.targets:
            why = upstreams[t.provider].disabled_reason
            if why and f"{via}{t.provider}: {why}" not in reasons:
                reasons.append(f"{via}{t.provider}: {why}")
    name = route.requested if len(route.requested) <= 200 else route.requested[:200] + "..."
    return ApiError(503, f"Model {name!r} is unavailable ({'; '.join(reasons) or 'no usable provider'}).",
                    "model_unavailable")


_EVENT_LINE = re.compile(rb"(?:^|\n)[^:\r\n]")
FIRST_COMMENTS_MAX = 64 << 10  # bytes of SSE comments and blank lines read before a stream counts as begun anyway


def _holds_event(data: bytes) -> bool:
    """Whether a stream's first bytes hold more than SSE comments and blank lines (`: OPENROUTER PROCESSING`, which
    a gateway sends while it waits): a stream that ends before that is a failure like one that sent nothing."""
    return data[:1] not in (b":", b"\n", b"\r") or len(data) > FIRST_COMMENTS_MAX \
        or _EVENT_LINE.search(data) is not None


async def _attempt(ctx: RequestContext, up: Upstream, hop: Hop, target: Target,
                   request: UpstreamRequest, probe: bool) -> Opened | Failure:
    """One try against one upstream: an answer (holding the slot), or the upstream's verdict on the failure
    (counted in the metrics and the breaker; the slot released). A whole answer is the breaker's success here; a
    stream's is judged at its end by its reader (`relay.UpstreamReader`): a success when it ends normally, a failure
    when it fails mid-stream, so that streams that all fail after their first chunk open the breaker, and a
    half-open probe (`probe`) closes it only once its stream ended normally."""
    if target.model != ctx.route.requested:
        request = request.for_model(target.model)
    if hop.model.max_output_tokens != request.max_output:  # (this hop's entry: a fallback's has its own)
        request = request._replace(max_output=hop.model.max_output_tokens)
    body_limit = ctx.limits.max_upstream_body_bytes
    async with up.slot(ctx.metrics) as slot:
        ex = ctx.exchange
        ex.provider, ex.upstream_model, ex.model = up.name, target.model or "", hop.model.name
        reply: Reply | None = None
        try:
            reply = await up.send(request)
            failure = await up.judge(reply, request, body_limit)
            if failure is None:
                first = b""
                if request.stream and reply.status == 200:
                    async for chunk in reply.chunks():  # up to the first that holds more than SSE comments
                        if chunk:
                            first += chunk
                            if _holds_event(first):
                                break
                    else:  # the stream ended before its first event: nothing reached the client, a failure
                        failure = Failure("truncated", ApiError(
                            502, f"Upstream {up.name!r} ended the stream before its first chunk.",
                            "upstream_truncated"), counts=True)
                else:
                    first = await reply.read(body_limit)
                    failure = error_answer(up.name, first, up.config.api_key) if reply.status == 200 else None
                if failure is None:
                    streamed = request.stream and reply.status == 200
                    if not streamed:
                        up.breaker.success()
                    slot.keep()
                    return Opened(reply, up, hop, target, first, slot, probe and streamed)
        except SEND_ERRORS as exc:
            failure = up.classify(exc)
        except BaseException:  # cancelled (the client went away), or a bug: no verdict on the upstream
            up.breaker.release_probe()
            if reply is not None:
                await reply.close()
            raise
        if reply is not None:
            await reply.close()
    metrics = ctx.metrics
    metrics.child(metrics.upstream_errors, up.name, failure.kind).inc()
    if failure.counts:
        up.breaker.failure()
    else:
        up.breaker.release_probe()
    return failure

