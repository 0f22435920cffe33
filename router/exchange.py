"""One request's record: filled in along its path, written once (one log line, its metrics) when it ends."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .metrics import Metrics

access_log = logging.getLogger("agentgate.access")


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
    tool_output: Any = None  # capture.ToolOutput, left by the pipeline when it repaired a reply

    def usage_from(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        pt, ct = usage.get("prompt_tokens", usage.get("input_tokens")), usage.get("completion_tokens",
                                                                                   usage.get("output_tokens"))
        if isinstance(pt, int):
            self.prompt_tokens = pt
        if isinstance(ct, int):
            self.completion_tokens = ct
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            self.cached_tokens = details["cached_tokens"]

    @property
    def final_status(self) -> int:
        """The status the client saw: 499 when it went away before an answer, 500 for an unexpected failure."""
        if self.status:
            return self.status
        return 499 if self.error == "client_disconnected" else 500

    def finish(self, metrics: Metrics, log_enabled: bool = True) -> None:
        elapsed = time.perf_counter() - self.started
        model = self.model or "-"
        m = metrics
        m.child(m.requests, model, self.provider or "-", self.endpoint, str(self.final_status)).inc()
        m.child(m.duration, model, self.endpoint).observe(elapsed)
        if self.ttft is not None:
            m.child(m.ttft, model).observe(self.ttft)
        if self.prompt_tokens:
            m.child(m.tokens, model, "prompt").inc(self.prompt_tokens)
        if self.completion_tokens:
            m.child(m.tokens, model, "completion").inc(self.completion_tokens)
        if self.cached_tokens:
            m.child(m.tokens, model, "cached").inc(self.cached_tokens)
        if self.tool_outcome is not None:
            m.record_repair(model, self.tool_outcome, self.repairs, self.failures, self.constrained)
        if self.key_name is not None:
            m.record_key(self.key_name, self.prompt_tokens, self.completion_tokens)
        logging_it = log_enabled and access_log.isEnabledFor(logging.INFO)
        if logging_it or m.request_observers:
            fields = self.fields(elapsed)
            if logging_it:  # `info()` without its caller lookup: the lines never show where they were logged from
                access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "", 0, "request", (), None,
                                                        extra={"fields": fields}))
            for observe in m.request_observers:  # the console's recent requests and capture ring
                observe(self, fields)

    def fields(self, elapsed: float) -> dict[str, object]:
        """The access-log fields. The client key appears by its configured name only, never the key itself."""
        out: dict[str, object] = {
            "request_id": self.request_id, "endpoint": self.endpoint, "key_name": self.key_name,
            "model": self.requested or None, "entry": self.model or None, "provider": self.provider or None,
            "upstream_model": self.upstream_model or None, "status": self.final_status, "stream": self.stream,
            "latency_ms": round(elapsed * 1000, 2),
            "ttft_ms": round(self.ttft * 1000, 2) if self.ttft is not None else None,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens, "retries": self.retries, "fallbacks": self.fallbacks,
            "tool_calls": self.tool_outcome, "repairs": self.repairs or None,
            "tool_call_failures": self.failures or None, "dropped_tools": self.dropped or None,
            "error": self.error,
        }
        return {k: v for k, v in out.items() if v is not None}
