"""Every Prometheus collector, defined once, on a registry owned by the application (no globals).

Label values are always bounded: config names (model entries, providers, engines), fixed enums, status codes.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .resilience import BREAKER_STATE_VALUE

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
ENGINE_STATES = ("stopped", "starting", "ready", "stopping", "failed")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("agentgate_requests",
                                "Requests answered, by model entry, provider, endpoint and status",
                                ["model", "provider", "endpoint", "status"], registry=r)
        self.duration = Histogram("agentgate_request_duration_seconds", "Time from request to last byte",
                                  ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("agentgate_time_to_first_token_seconds", "Time from request to first streamed byte",
                              ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("agentgate_upstream_errors", "Upstream failures by kind",
                                       ["provider", "kind"], registry=r)
        self.in_flight = Gauge("agentgate_in_flight_requests", "Requests being served, by provider",
                               ["provider"], registry=r)
        self.queued = Gauge("agentgate_queued_requests", "Requests waiting for a provider slot",
                            ["provider"], registry=r)
        self.tokens = Counter("agentgate_tokens", "Tokens by model entry and type (prompt, completion, cached)",
                              ["model", "type"], registry=r)
        self.tool_calls = Counter("agentgate_tool_calls", "Tool calls by outcome (valid, repaired, failed)",
                                  ["model", "outcome"], registry=r)
        self.repairs = Counter("agentgate_repairs", "Repairs applied to tool calls, by kind", ["model", "kind"],
                               registry=r)
        self.tool_failures = Counter("agentgate_tool_call_failures",
                                     "Tool calls that could not be repaired, by reason", ["model", "reason"],
                                     registry=r)
        self.retries = Counter("agentgate_retries", "Upstream retries", ["provider"], registry=r)
        self.fallbacks = Counter("agentgate_fallbacks", "Fallbacks from one model entry to the next",
                                 ["model", "to"], registry=r)
        self.breaker = Gauge("agentgate_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                             ["provider"], registry=r)
        self.engine_state = Gauge("agentgate_engine_state", "1 for the current state of each engine",
                                  ["engine", "state"], registry=r)
        self.engine_load = Histogram("agentgate_engine_load_seconds", "Engine start-to-ready time", ["engine"],
                                     buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=r)
        self.engine_restarts = Counter("agentgate_engine_crashes", "Engine processes that died unexpectedly",
                                       ["engine"], registry=r)
        self.engine_batch = Gauge("agentgate_engine_batch_size", "Sequences in the running batch (last seen)",
                                  ["engine"], registry=r)
        self.config_reloads = Counter("agentgate_config_reloads", "Config reloads by result", ["result"],
                                      registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """labels() with a cache: the hot path pays one dict lookup."""
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def set_breaker(self, provider: str, state: str) -> None:
        self.child(self.breaker, provider).set(BREAKER_STATE_VALUE[state])

    def set_engine_state(self, engine: str, state: str) -> None:
        for s in ENGINE_STATES:
            self.child(self.engine_state, engine, s).set(1 if s == state else 0)

    def record_repair(self, model: str, outcome: str, repairs: list[str], failures: list[str]) -> None:
        if outcome in ("valid", "repaired", "failed"):
            self.child(self.tool_calls, model, outcome).inc()
        for kind in repairs:
            self.child(self.repairs, model, kind).inc()
        for reason in failures:
            self.child(self.tool_failures, model, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
