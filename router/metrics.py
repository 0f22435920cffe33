"""Every Prometheus collector, defined once, on a registry owned by the application (no globals).

Label values are always bounded: config names (model entries, providers, engines), fixed enums, HTTP status codes;
free-form kinds reported by the repair library are capped (`MAX_KINDS`, then "other").
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.registry import Collector

from .chat_types import member
from .resilience import BREAKER_STATE_VALUE

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
ENGINE_STATES = ("stopped", "starting", "ready", "stopping", "failed")
TOOL_OUTCOMES = ("valid", "repaired", "failed")
FAILURE_REASONS = ("invalid_json", "unknown_name", "schema_mismatch", "truncated", "no_call", "failed_after_header",
                   "unrepaired")
MAX_KINDS = 64  # distinct repair kinds per process before new ones count as "other"
CONTENT_TYPE = CONTENT_TYPE_LATEST
_KIND_OK = re.compile(r"[a-z0-9][a-z0-9_:.\-]{0,47}")


def _version() -> str:
    from . import version

    return version()


@dataclass(frozen=True)
class EngineStats:
    """The counters one engine worker reported on `GET /stats` (cumulative since that process started)."""

    running: int = 0
    queue: int = 0
    max_batch: int | None = None
    cache_hit_tokens: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_bytes: int | None = None
    generated_tokens: int = 0
    blas: str | None = None  # which BLAS the engine's MLX CPU matmul calls (openblas, bundled, ...)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EngineStats:
        def num(value: object, default: int | None = 0) -> int | None:
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default

        cache, tokens, blas = member(doc, "cache"), member(doc, "tokens"), member(doc, "blas").get("blas")
        hit_tokens = num(cache.get("hit_tokens"), None)
        if hit_tokens is None:
            hit_tokens = num(tokens.get("cached"))
        return cls(
            running=num(doc.get("running")) or 0, queue=num(doc.get("queue")) or 0,
            max_batch=num(doc.get("max_batch"), None), cache_hit_tokens=hit_tokens or 0,
            cache_hits=num(cache.get("hits")) or 0, cache_misses=num(cache.get("misses")) or 0,
            cache_bytes=num(cache.get("bytes"), None), generated_tokens=num(tokens.get("generated")) or 0,
            blas=blas if isinstance(blas, str) and _KIND_OK.fullmatch(blas) else None,
        )


class EngineStateCollector(Collector):
    """`agentgate_engine_state{engine,state}`: 1 for the state each engine is in, 0 for the others. Read when scraped
    from what `follow` was given (the supervisor's own states), so it is always the state /ready and /running report,
    whichever step the engine is at."""

    def __init__(self) -> None:
        self._source: Callable[[], Mapping[str, str]] | None = None

    def follow(self, source: Callable[[], Mapping[str, str]]) -> None:
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        states = self._source() if self._source is not None else {}
        for engine, state in sorted(states.items()):
            for s in ENGINE_STATES:
                family.add_metric([engine, s], 1 if s == state else 0)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("agentgate_engine_state", "1 for the current state of each engine",
                                 labels=["engine", "state"])


class EngineStatsCollector(Collector):
    """Exposes the latest `/stats` of each ready engine. The engine owns the counters, so a restarted engine
    starts again from zero, which Prometheus reads as an ordinary counter reset."""

    def __init__(self) -> None:
        self.latest: dict[str, EngineStats] = {}

    def update(self, engine: str, stats: EngineStats) -> None:
        self.latest[engine] = stats

    def forget(self, engine: str) -> None:
        self.latest.pop(engine, None)

    def retain(self, engines: Iterable[str]) -> None:
        keep = set(engines)
        for name in [n for n in self.latest if n not in keep]:
            del self.latest[name]

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        batch, queue, max_batch, hit_tokens, lookups, cache_bytes, generated, blas = families
        for name, s in sorted(self.latest.items()):
            batch.add_metric([name], s.running)
            queue.add_metric([name], s.queue)
            if s.max_batch is not None:
                max_batch.add_metric([name], s.max_batch)
            hit_tokens.add_metric([name], s.cache_hit_tokens)
            lookups.add_metric([name, "hit"], s.cache_hits)
            lookups.add_metric([name, "miss"], s.cache_misses)
            if s.cache_bytes is not None:
                cache_bytes.add_metric([name], s.cache_bytes)
            generated.add_metric([name], s.generated_tokens)
            if s.blas is not None:
                blas.add_metric([name, s.blas], 1)
        return list(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("agentgate_engine_batch_size", "Sequences in the engine's running batch",
                              labels=["engine"]),
            GaugeMetricFamily("agentgate_engine_queue_depth", "Requests waiting for a batch slot in the engine",
                              labels=["engine"]),
            GaugeMetricFamily("agentgate_engine_max_batch_size", "Largest batch the engine runs", labels=["engine"]),
            CounterMetricFamily("agentgate_engine_prefix_cache_hit_tokens",
                                "Prompt tokens served from the engine's prefix cache", labels=["engine"]),
            CounterMetricFamily("agentgate_engine_prefix_cache_lookups",
                                "Prefix cache lookups by result (hit, miss)", labels=["engine", "result"]),
            GaugeMetricFamily("agentgate_engine_prefix_cache_bytes", "Memory held by the engine's prefix cache",
                              labels=["engine"]),
            CounterMetricFamily("agentgate_engine_generated_tokens", "Tokens generated by the engine",
                                labels=["engine"]),
            GaugeMetricFamily("agentgate_engine_blas_info", "1 for the BLAS the engine's MLX CPU matmul calls "
                              "(openblas, bundled, accelerate, unknown)", labels=["engine", "blas"]),
        )


def fast_inc(child: Any) -> Callable[[float], None]:
    """`child.inc` of a labelled counter child, without prometheus_client's checks on every call (the child has its
    labels, and the callers here count only positive amounts): its value's own `inc`, which does the counting
    (under its lock) either way. `child.inc` where the child is not laid out that way."""
    inc = getattr(getattr(child, "_value", None), "inc", None)
    return cast(Callable[[float], None], inc if callable(inc) else child.inc)


def fast_set(child: Any) -> Callable[[float], None]:
    """`child.set` of a labelled gauge child, the same way as `fast_inc`."""
    value_set = getattr(getattr(child, "_value", None), "set", None)
    if not callable(value_set):
        return cast(Callable[[float], None], child.set)

    def set_value(value: float) -> None:
        value_set(float(value))

    return set_value


def fast_observe(child: Any) -> Callable[[float], None]:
    """`child.observe` of a labelled histogram child, the same way as `fast_inc`: the sum and the one bucket the
    amount falls in (the first bound at or above it, as `Histogram.observe` finds it) counted directly."""
    try:
        sum_inc, bounds = child._sum.inc, tuple(child._upper_bounds)
        buckets = tuple(b.inc for b in child._buckets)
    except AttributeError:
        return cast(Callable[[float], None], child.observe)
    if len(bounds) != len(buckets):
        return cast(Callable[[float], None], child.observe)
    last = len(buckets)

    def observe(amount: float) -> None:
        sum_inc(amount)
        i = bisect_left(bounds, amount)
        if i < last:
            buckets[i](1)

    return observe


class ModelSeries:
    """One model entry's per-request children, each bound at its first use: a series appears once it has counted
    something, as with `labels()` at that moment."""

    __slots__ = ("_bound", "_metrics", "_model")

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._metrics, self._model = metrics, model
        self._bound: dict[object, Callable[..., None]] = {}

    def tokens(self, kind: str, count: int) -> None:
        """`kind`: prompt, completion or cached."""
        inc = self._bound.get(kind)
        if inc is None:
            inc = self._bound[kind] = fast_inc(self._metrics.tokens.labels(self._model, kind))
        if count > 0:
            inc(count)

    def ttft(self, seconds: float) -> None:
        observe = self._bound.get(None)
        if observe is None:
            observe = self._bound[None] = fast_observe(self._metrics.ttft.labels(self._model))
        observe(seconds)

    def tool_call(self, outcome: str, constrained: bool) -> None:
        key = (outcome, constrained)
        inc = self._bound.get(key)
        if inc is None:
            inc = self._bound[key] = fast_inc(self._metrics.tool_calls.labels(self._model, outcome,
                                                                              "yes" if constrained else "no"))
        inc(1)


@dataclass(frozen=True, slots=True)
class RequestSeries:
    """The children one finished request updates: its count (model, provider, endpoint, status), its duration
    (model, endpoint) and its model's series."""

    count: Callable[[float], None]  # called with 1
    duration: Callable[[float], None]
    model: ModelSeries


class Metrics:
    def __init__(self) -> None:
        # no `<name>_created` gauge beside every counter and histogram series (prometheus_client's default for the
        # text format): named in no rule or dashboard, it doubled the series a scrape stores. A process-wide
        # switch, read as each series is made; the router's are all made here and after.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # (prometheus_client leaves it unannotated)
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("agentgate_requests",
                                "Requests answered, by model entry, provider, endpoint and status",
                                ["model", "provider", "endpoint", "status"], registry=r)
        self.duration = Histogram("agentgate_request_duration_seconds", "Time from request to last byte",
                                  ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("agentgate_time_to_first_token_seconds", "Time from request to first streamed byte",
                              ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("agentgate_upstream_errors", "Upstream failures by provider and kind",
                                       ["provider", "kind"], registry=r)
        self.in_flight = Gauge("agentgate_in_flight_requests", "Requests being served, by provider",
                               ["provider"], registry=r)
        self.queued = Gauge("agentgate_queued_requests", "Requests waiting for a provider slot",
                            ["provider"], registry=r)
        self.tokens = Counter("agentgate_tokens", "Tokens by model entry and type (prompt, completion, cached)",
                              ["model", "type"], registry=r)
        self.tool_calls = Counter("agentgate_tool_calls",
                                  "Replies that attempted tool calls, by outcome (valid, repaired, failed) and "
                                  "whether a local engine decoded them under a grammar constraint (yes, no)",
                                  ["model", "outcome", "constrained"], registry=r)
        self.repairs = Counter("agentgate_tool_call_repairs", "Repairs applied to tool calls, by kind",
                               ["model", "kind"], registry=r)
        self.tool_failures = Counter("agentgate_tool_call_failures",
                                     "Tool calls that could not be made valid, by reason", ["model", "reason"],
                                     registry=r)
        self.retries = Counter("agentgate_retries",
                               "Requests sent upstream again, by provider and reason (upstream: a failure before "
                               "the first byte; repair: a re-ask after a failed tool-call repair)",
                               ["provider", "reason"], registry=r)
        self.fallbacks = Counter("agentgate_fallbacks", "Fallbacks from one model entry to the next",
                                 ["model", "to"], registry=r)
        self.breaker = Gauge("agentgate_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                             ["provider"], registry=r)
        self.engine_state = EngineStateCollector()
        r.register(self.engine_state)
        self.engine_load = Histogram("agentgate_engine_load_seconds", "Engine start-to-ready time", ["engine"],
                                     buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=r)
        self.engine_restarts = Counter("agentgate_engine_crashes", "Engine processes that died unexpectedly",
                                       ["engine"], registry=r)
        self.engine_stats = EngineStatsCollector()
        r.register(self.engine_stats)
        self.key_requests = Counter("agentgate_key_requests", "Requests by client key name (never the key)",
                                    ["key"], registry=r)
        self.key_tokens = Counter("agentgate_key_tokens", "Tokens by client key name and type (prompt, completion)",
                                  ["key", "type"], registry=r)
        self.config_reloads = Counter("agentgate_config_reloads", "Config reloads by result (success, failure)",
                                      ["result"], registry=r)
        self.config_reload_ok = Gauge("agentgate_config_last_reload_successful",
                                      "1 when the last config reload succeeded (or none was tried)", registry=r)
        self.config_reload_time = Gauge("agentgate_config_last_reload_success_timestamp_seconds",
                                        "When the running config was loaded", registry=r)
        self.build = Info("agentgate_build", "agentgate version", registry=r)
        self.build.info({"version": _version()})
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
        self.config_reload_ok.set(1)
        self.config_reload_time.set(time.time())
        self._children: dict[tuple[Any, ...], Any] = {}
        self._requests: dict[tuple[str, str, str, int], RequestSeries] = {}
        self._models: dict[str, ModelSeries] = {}
        self._kinds: set[str] = set()
        # Called with (exchange, access-log fields) once per finished request; see Exchange.finish.
        self.request_observers: list[Callable[[Any, dict[str, object]], None]] = []
        self.key_usage: dict[str, list[int]] = {}  # key name -> [requests, prompt tokens, completion tokens]

    def request_series(self, model: str, provider: str, endpoint: str, status: int) -> RequestSeries:
        """The children a finished request with these labels updates, bound once per label set (bounded like the
        labels themselves: config names, endpoints, status codes)."""
        key = (model, provider, endpoint, status)
        series = self._requests.get(key)
        if series is None:
            series = self._requests[key] = RequestSeries(
                fast_inc(self.requests.labels(model, provider, endpoint, str(status))),
                fast_observe(self.duration.labels(model, endpoint)), self.model_series(model))
        return series

    def model_series(self, model: str) -> ModelSeries:
        series = self._models.get(model)
        if series is None:
            series = self._models[model] = ModelSeries(self, model)
        return series

    def child(self, metric: Any, *labels: str) -> Any:
        """labels() with a cache: the hot path pays one dict lookup."""
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def retried(self, provider: str, reason: Literal["upstream", "repair"]) -> None:
        """One request sent to `provider` again: after its failure (`upstream`), or a re-ask after a failed repair."""
        self.child(self.retries, provider, reason).inc()

    def set_breaker(self, provider: str, state: str) -> None:
        self.child(self.breaker, provider).set(BREAKER_STATE_VALUE[state])

    def follow_engines(self, states: Callable[[], Mapping[str, str]]) -> None:
        """Where `agentgate_engine_state` reads each engine's state when scraped (engine name -> state)."""
        self.engine_state.follow(states)

    def track_engine(self, engine: str) -> None:
        """Export the engine's crash count from the start, at 0: increase() over a window that holds the first crash
        counts it (a series that appears at 1 is not seen to increase)."""
        self.child(self.engine_restarts, engine)

    def record_repair(self, model: str, outcome: str, repairs: list[str], failures: list[str],
                      constrained: bool = False) -> None:
        if outcome in TOOL_OUTCOMES:
            self.model_series(model).tool_call(outcome, constrained)
        for kind in repairs:
            self.child(self.repairs, model, self._bounded_kind(kind)).inc()
        for reason in failures:
            self.child(self.tool_failures, model, reason if reason in FAILURE_REASONS else "other").inc()

    def _bounded_kind(self, kind: str) -> str:
        if kind in self._kinds:
            return kind
        if len(self._kinds) >= MAX_KINDS or not _KIND_OK.fullmatch(kind):
            return "other"
        self._kinds.add(kind)
        return kind

    def record_key(self, key: str, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Usage by key name: names come from the config (bounded), keys themselves never appear."""
        usage = self.key_usage.setdefault(key, [0, 0, 0])
        usage[0] += 1
        self.child(self.key_requests, key).inc()
        if prompt_tokens:
            usage[1] += prompt_tokens
            self.child(self.key_tokens, key, "prompt").inc(prompt_tokens)
        if completion_tokens:
            usage[2] += completion_tokens
            self.child(self.key_tokens, key, "completion").inc(completion_tokens)

    def record_reload(self, ok: bool) -> None:
        self.child(self.config_reloads, "success" if ok else "failure").inc()
        self.config_reload_ok.set(1 if ok else 0)
        if ok:
            self.config_reload_time.set(time.time())

    def forget_provider(self, provider: str) -> None:
        """Drop the gauges of a provider that left the config (its counters stay: they are history)."""
        self._forget((self.breaker, self.in_flight, self.queued), provider)

    def forget_engine(self, engine: str) -> None:
        self.engine_stats.forget(engine)

    def _forget(self, metrics: tuple[Any, ...], first_label: str) -> None:
        ids = {id(m): m for m in metrics}
        for key in [k for k in self._children if k[0] in ids and k[1] == first_label]:
            del self._children[key]
            try:
                ids[key[0]].remove(*key[1:])
            except KeyError:
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)
