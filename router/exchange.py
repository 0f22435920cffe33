"""One request's record: filled in along its path, written once (one log line, its metrics) when it ends."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .logs import log_fields
from .metrics import Metrics

access_log = logging.getLogger("agentgate.access")
CLIENT_CLOSED = 499  # nginx's status for a client that closed its connection before its answer was all sent


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, None where none was reported."""

    prompt: int | None
    completion: int | None
    cached: int | None


def _plus(before: int | None, more: int) -> int:
    return more if before is None else before + more


@dataclass(slots=True)
class Exchange:
    request_id: str
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    key_name: str | None = None
    requested: str = ""
    model: str = ""  # the config entry that answered (bounded: used as a metric label)
    provider: str = ""
    upstream_model: str = ""
    status: int = 0
    stream: bool = False
    ttft: float | None = None
    retries: int = 0
    fallbacks: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    tool_outcome: str | None = None
    constrained: bool = False  # a local engine decoded the reply's tool calls under a grammar
    repairs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # tool types left out (the backend cannot run them)
    error: str | None = None
    ended_with: int = 0  # a stream that ended with an error event: that error's status (its HTTP status was 200);
    # 499 for a client that went away after its answer's status went out
    tried: tuple[str, ...] = ()  # the provider of each upstream attempt, in order
    failed_on: tuple[str, ...] = ()  # the provider of each failed attempt (what agentgate_upstream_errors_total
    # counts: before the answer, or mid-stream), in order
    tool_output: Any = None  # capture.ToolOutput, left by the pipeline when it repaired a reply
    spent: Usage | None = None  # the usage of the answers before this one (a re-ask follows them), added in

    def usage_from(self, usage: object) -> None:
        """The usage of the answer being read (a stream may report it more than once, each time whole)."""
        if not isinstance(usage, dict):
            return
        pt, ct = usage.get("prompt_tokens", usage.get("input_tokens")), usage.get("completion_tokens",
                                                                                   usage.get("output_tokens"))
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        spent = self.spent
        if isinstance(pt, int):
            self.prompt_tokens = pt if spent is None else _plus(spent.prompt, pt)
        if isinstance(ct, int):
            self.completion_tokens = ct if spent is None else _plus(spent.completion, ct)
        if isinstance(cached, int):
            self.cached_tokens = cached if spent is None else _plus(spent.cached, cached)

    def next_answer(self) -> None:
        """The upstream is asked again for this request (a re-ask): what the answers so far spent stays counted,
        and the next answer's usage adds to it; it counts as a retry."""
        self.retries += 1
        self.spent = Usage(self.prompt_tokens, self.completion_tokens, self.cached_tokens)

    def client_gone(self) -> None:
        """The client went away: before its answer, the record's status is 499; after the answer's status went
        out, that status stays and the request counts as a 499 (`ended_with`), unless its stream had already
        failed with an error of its own. A 5xx answer stays a 5xx with its error: the failure was not the
        client's leaving, and the 5xx alerts see it."""
        if self.status >= 500:
            return
        self.error = "client_disconnected"
        if self.status and not self.ended_with:
            self.ended_with = CLIENT_CLOSED

    @property
    def final_status(self) -> int:
        """The status the client saw: 499 when it went away before an answer, 500 for an unexpected failure."""
        if self.status:
            return self.status
        return CLIENT_CLOSED if self.error == "client_disconnected" else 500

    def finish(self, metrics: Metrics, log_enabled: bool = True) -> None:
        elapsed = time.perf_counter() - self.started
        model = self.model or "-"
        # a stream that failed after its 200 counts with its error's status: the 5xx alerts and panels see it
        status = self.ended_with or self.final_status
        series = metrics.request_series(model, self.provider or "-", self.endpoint, status)
        series.count(1)
        series.duration(elapsed)
        per_model = series.model
        if self.ttft is not None:
            per_model.ttft(self.ttft)
        if self.prompt_tokens:
            per_model.tokens("prompt", self.prompt_tokens)
        if self.completion_tokens:
            per_model.tokens("completion", self.completion_tokens)
        if self.cached_tokens:
            per_model.tokens("cached", self.cached_tokens)
        if self.tool_outcome is not None:
            metrics.record_repair(model, self.tool_outcome, self.repairs, self.failures, self.constrained)
        if self.key_name is not None:
            metrics.record_key(self.key_name, self.prompt_tokens, self.completion_tokens)
        logging_it = log_enabled and access_log.isEnabledFor(logging.INFO)
        observers = metrics.request_observers
        if logging_it or observers:
            fields = self.fields(elapsed)  # built once, then only read: the log line and the console share it
            if logging_it:
                log_fields(access_log, "request", fields)
            for observe in observers:  # the console's recent requests and capture ring
                observe(self, fields)

    def fields(self, elapsed: float) -> dict[str, object]:
        """The access-log fields. The client key appears by its configured name only, never the key itself."""
        out: dict[str, object] = {"request_id": self.request_id, "endpoint": self.endpoint}
        if self.key_name is not None:
            out["key_name"] = self.key_name
        if self.requested:
            out["model"] = self.requested
        if self.model:
            out["entry"] = self.model
        if self.provider:
            out["provider"] = self.provider
        if self.upstream_model:
            out["upstream_model"] = self.upstream_model
        out["status"], out["stream"], out["latency_ms"] = self.final_status, self.stream, round(elapsed * 1000, 2)
        if self.ttft is not None:
            out["ttft_ms"] = round(self.ttft * 1000, 2)
        for name, count in (("prompt_tokens", self.prompt_tokens), ("completion_tokens", self.completion_tokens),
                            ("cached_tokens", self.cached_tokens)):
            if count is not None:
                out[name] = count
        out["retries"], out["fallbacks"] = self.retries, self.fallbacks
        for name, value in (("tool_calls", self.tool_outcome), ("repairs", self.repairs or None),
                            ("tool_call_failures", self.failures or None), ("dropped_tools", self.dropped or None),
                            ("error", self.error)):
            if value is not None:
                out[name] = value
        return out
