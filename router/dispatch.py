"""Send one request along its route: replicas by least outstanding, retries before the first byte,
Retry-After, circuit breakers, concurrency limits, then the fallback chain."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from . import jsoncodec
from .config.model import Target
from .context import RequestContext
from .errors import ApiError
from .live_config import LiveConfig
from .relay import carries_error, error_value, failed_finish, finished_with, secrets_of
from .resilience import Admission, QueueFull, backoff_delay
from .routing import Hop
from .sse import error_field, event_data
from .upstream.base import (
    SEND_ERRORS,
    Failure,
    Reply,
    Slot,
    Upstream,
    UpstreamRequest,
    error_answer,
    event_failure,
)

log = logging.getLogger("agentgate")


@dataclass(slots=True)
class Opened:
    """A successful upstream answer: status and headers known, and the first chunk (stream) or body read. It holds
    the upstream's slot until `close()`."""

    reply: Reply
    upstream: Upstream
    hop: Hop
    target: Target
    first: bytes  # stream: its first bytes, up to its first event; else the whole body
    slot: Slot
    admitted: Admission  # what the breaker let it through as: a stream may be its half-open probe (see `close`)
    _closed: bool = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # a probe's stream that got no verdict (the client left, an upstream error event) frees the probe (after
        # its verdict, or for any other request: nothing to free)
        self.upstream.breaker.release_probe(self.admitted)
        try:
            await self.reply.close()
        finally:
            self.slot.release()


def _pick(rt: LiveConfig, hop: Hop, skip: set[str], failed: dict[str, int] | None,
          ready: dict[str, float] | None = None) -> tuple[Upstream, Target] | None:
    """The usable replica that failed least often for this request (`failed`: how often each did), then the one it
    may try again soonest (`ready`: when, after its backoff or Retry-After), then one with a free concurrency slot
    over one that would queue, then the one with the fewest outstanding requests (config order breaks ties): a retry
    goes to a replica that has not failed yet, else to one it need not wait for, a request to a replica that can
    take it now."""
    targets = hop.targets
    if len(targets) == 1:  # (the common case: one provider)
        t = targets[0]
        up = rt.upstreams[t.provider]
        return None if up.disabled_reason or t.provider in skip else (up, t)
    best: tuple[Upstream, Target] | None = None
    best_key = (0, 0.0, False, 0)
    now = time.monotonic() if ready else 0.0
    for t in targets:
        up = rt.upstreams[t.provider]
        if up.disabled_reason or t.provider in skip:
            continue
        limiter = up.limiter
        key = (failed.get(t.provider, 0) if failed else 0,
               max(0.0, ready.get(t.provider, 0.0) - now) if ready else 0.0,
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
        retry_of: str | None = None  # the replica whose failure the next try retries: counted once it is sent
        while True:
            picked = _pick(ctx.runtime, hop, skip, failed, ready)
            if picked is None:
                last = last or _unusable(ctx)
                break
            up, target = picked
            if failed and (wait := ready.get(up.name, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # a replica tried again (no other is left that has not failed)
            admitted = up.breaker.allow()
            if admitted is None:
                skip.add(up.name)
                # a client told to wait the whole cooldown waited it out on every retry (Codex: minutes before
                # it said anything, where the upstream itself fails it in seconds): a few seconds at most
                wait = min(up.breaker.retry_after(), CIRCUIT_RETRY_AFTER_MAX)
                last = ApiError(503, f"Provider {up.name!r} is cooling down after repeated failures.",
                                "circuit_open", headers={"Retry-After": str(max(1, round(wait)))})
                continue
            sent = len(ex.tried)
            try:
                outcome = await _attempt(ctx, up, hop, target, request, admitted)
            except QueueFull as full:  # another replica of the hop may still take it (else the next hop)
                skip.add(up.name)
                last = ApiError(429, f"Too many requests queued for provider {up.name!r}; retry shortly.",
                                "queue_full", headers={"Retry-After": str(max(1, round(full.retry_after)))})
                continue
            finally:
                # a retry counts once it went upstream (its slot taken): not when the breaker refused it, its
                # queue was full, or its client left while it slept or waited for a slot
                if retry_of is not None and len(ex.tried) > sent:
                    ex.retries += 1
                    metrics.retried(retry_of, "upstream")
                    retry_of = None
            if isinstance(outcome, Opened):
                return outcome
            if outcome.client:  # the client's error, as a 4xx status is: neither retried nor fallen back from
                raise outcome.error
            last = outcome.error
            attempt += 1
            if attempt > up.config.policy.retries:
                break
            if outcome.final:  # (a redirect: its base_url) this replica would fail it again; its siblings may not
                skip.add(up.name)
                retry_of = up.name
                continue
            delay = backoff_delay(attempt, up.config.policy, outcome.retry_after)
            if delay is None:  # it asked to wait past max_retry_after: not tried again for this request
                skip.add(up.name)
                continue
            retry_of = up.name
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


FIRST_COMMENTS_MAX = 64 << 10  # bytes read before a stream counts as begun anyway (SSE comments, blank lines, a
# first event not yet whole)
_MORE = object()  # `_opening`: the first event is not whole yet


def _opening(name: str, data: bytes, secrets: tuple[str, ...]) -> Failure | object | None:
    """What a stream's first bytes say, once they hold its first event (past SSE comments, blank lines and events
    without data, such as `: OPENROUTER PROCESSING`, which a gateway sends while it waits): None when it is a
    chunk (the stream begins); a failure like one before any chunk when it is the end (`data: [DONE]`) or an
    upstream error event (`{"error": ...}`, a failed finish_reason such as "error" or "abort", an `error:` field or
    `event: error`); `_MORE` while the first event is not whole. Looked at once per stream, never per chunk."""
    if len(data) > FIRST_COMMENTS_MAX:
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    start = 0
    while True:
        end = data.find(b"\n\n", start)
        if end < 0:
            return _MORE
        event = data[start:end + 2]
        start = end + 2
        if not event.startswith(b"data:") and (err := error_field(event)) is not None:
            return event_failure(name, error_value(err), secrets)
        payload = event_data(event)
        if payload is None:  # comments, blank lines, an id or a name alone: not a chunk yet
            continue
        if payload.strip() == b"[DONE]":
            return _ended_early(name)
        if b'"error"' in payload or b'"abort"' in payload:
            try:
                doc = jsoncodec.loads(payload)
            except (ValueError, RecursionError):
                return None
            if isinstance(doc, dict):
                if carries_error(doc):
                    return event_failure(name, doc["error"], secrets)
                if (reason := failed_finish(doc.get("choices"))) is not None:
                    return event_failure(name, finished_with(reason), secrets)
        return None


def _ended_early(name: str) -> Failure:
    return Failure("truncated", ApiError(502, f"Upstream {name!r} ended the stream before its first chunk.",
                                         "upstream_truncated"), counts=True)


async def _stream_start(up: Upstream, reply: Reply) -> tuple[bytes, Failure | None]:
    """A stream's first bytes, read up to its first event, and the failure they are when that event is no chunk
    (see `_opening`) or the stream ends before it: nothing reached the client yet."""
    first = b""
    async for chunk in reply.chunks():
        if chunk:
            first += chunk
            verdict = _opening(up.name, first, secrets_of(up))
            if verdict is not _MORE:
                return first, verdict if isinstance(verdict, Failure) else None
    return first, _ended_early(up.name)


async def _attempt(ctx: RequestContext, up: Upstream, hop: Hop, target: Target,
                   request: UpstreamRequest, admitted: Admission) -> Opened | Failure:
    """One try against one upstream: an answer (holding the slot), or the upstream's verdict on the failure
    (counted in the metrics and the breaker; the slot released). A whole answer is the breaker's success here; a
    stream's is judged at its end by its reader (`relay.UpstreamReader`): a success when it ends normally, a failure
    when it fails mid-stream, so that streams that all fail after their first chunk open the breaker, and a
    half-open probe (`admitted.probe`) closes it only once its stream ended normally. A try that ends without a
    verdict (its queue full or timed out, the client gone while it waited for a slot or for the upstream, a bug)
    frees the probe, however it ended, if it is the probe: only the probe's own request ever frees it."""
    try:
        outcome = await _exchange(ctx, up, hop, target, request, admitted)
    except BaseException:  # cancelled (the client went away), QueueFull, or a bug: no verdict on the upstream
        up.breaker.release_probe(admitted)
        raise
    if isinstance(outcome, Opened):
        return outcome
    failure = outcome
    if failure.client:  # an answer (the client's error): the upstream works
        up.breaker.success()
        return failure
    metrics = ctx.metrics
    metrics.child(metrics.upstream_errors, up.name, failure.kind).inc()
    ctx.exchange.failed_on += (up.name,)
    if failure.counts:
        up.breaker.failure(admitted)
    else:
        up.breaker.release_probe(admitted)
    return failure


async def _exchange(ctx: RequestContext, up: Upstream, hop: Hop, target: Target,
                    request: UpstreamRequest, admitted: Admission) -> Opened | Failure:
    """The request sent once its slot is free (waiting in the provider's queue), and the answer read up to what
    judges it: an answer (holding the slot) or why it is none (the slot released). Fields of the request this
    upstream refused for the target's model (`Upstream.refused`) are left out (the limit renamed)."""
    if request.refit is not None and up.refused and (unknown := up.refused.of(target.model)):
        request = request.refit(request, unknown)  # (what it refused before, never sent it again)
    if target.model != ctx.route.requested:
        request = request.for_model(target.model)
    if hop.model.max_output_tokens != request.max_output:  # (this hop's entry: a fallback's has its own)
        request = request._replace(max_output=hop.model.max_output_tokens)
    body_limit = ctx.limits.max_upstream_body_bytes
    async with up.slot(ctx.metrics) as slot:
        ex = ctx.exchange
        ex.provider, ex.upstream_model, ex.model = up.name, target.model or "", hop.model.name
        ex.tried += (up.name,)
        reply: Reply | None = None
        try:
            reply = await up.send(request)
            failure = await up.judge(reply, request, body_limit)
            if failure is None:
                if request.stream and reply.status == 200:
                    first, failure = await _stream_start(up, reply)
                else:
                    first = await reply.read(body_limit)
                    failure = error_answer(up.name, first, up.config.api_key) if reply.status == 200 else None
                if failure is None:
                    if not (request.stream and reply.status == 200):
                        up.breaker.success()
                    slot.keep()
                    return Opened(reply, up, hop, target, first, slot, admitted)
        except SEND_ERRORS as exc:
            failure = up.classify(exc)
        except BaseException:  # cancelled (the client went away), or a bug: the reply closed
            if reply is not None:
                await reply.close()
            raise
        if reply is not None:
            await reply.close()
    return failure
