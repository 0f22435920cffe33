"""Probe results: per-turn records, the conversation's summary, its text rendering, and a progress bar."""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

VALID_STATUSES = ("valid", "repaired")


@dataclass
class TurnResult:
    turn: int
    task: str
    expected_tool: str
    status: str  # "valid" | "repaired" | "invalid" | "error" (no answer: HTTP or transport failure)
    failure: str | None = None  # a kind from probe.check, http_<status>, timeout, stream_error, ...
    detail: str = ""
    repairs: list[str] | None = field(default_factory=list)  # x-agentgate-repairs; None when not reported
    diagnosis: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments"} as the model sent them
    on_task: bool = False  # a valid call to the tool the task asked for
    latency_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None

    @property
    def valid(self) -> bool:
        return self.status in VALID_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid}


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(turns: list[TurnResult]) -> dict[str, Any]:
    """Counts, rates, repair/failure kinds, latency percentiles and token totals of a list of turns. The model's
    failures (`invalid`: `failures`, `failed_turns`) and the turns the backend failed (`errors`: `error_kinds`,
    `error_turns`, not judged) are counted apart, as the text report and the verdict keep them; the rates are over
    the `judged` turns (all but the error turns), None when there are none."""
    n = len(turns)
    invalid = [t for t in turns if t.status == "invalid"]
    errors = [t for t in turns if t.status == "error"]
    valid = sum(t.valid for t in turns)
    judged = n - len(errors)
    latencies = [t.latency_s for t in turns if t.status != "error"]
    ttfts = [t.ttft_s for t in turns if t.ttft_s is not None]
    completion = sum(t.completion_tokens or 0 for t in turns)
    busy = sum(latencies)
    return {
        "turns": n,
        "valid": valid,
        "repaired": sum(t.status == "repaired" for t in turns),
        "invalid": len(invalid),
        "errors": len(errors),
        "judged": judged,
        "validity_rate": rate(valid, judged),
        "on_task_rate": rate(sum(t.on_task for t in turns), judged),
        "repairs": dict(sorted(Counter(k for t in turns for k in (t.repairs or [])).items())),
        "failures": _failures(invalid),
        "failed_turns": [t.turn for t in invalid],
        "error_kinds": _failures(errors),
        "error_turns": [t.turn for t in errors],
        "latency_p50_s": _round(percentile(latencies, 50)),
        "latency_p95_s": _round(percentile(latencies, 95)),
        "ttft_p50_s": _round(percentile(ttfts, 50)),
        "ttft_p95_s": _round(percentile(ttfts, 95)),
        "prompt_tokens": sum(t.prompt_tokens or 0 for t in turns),
        "completion_tokens": completion,
        "cached_tokens": sum(t.cached_tokens or 0 for t in turns),
        "tokens_per_s": round(completion / busy, 2) if busy > 0 and completion else None,
    }


def rate(count: int, judged: int) -> float | None:
    """`count` of `judged` turns, rounded; None when no turn was judged."""
    return round(count / judged, 4) if judged else None


def judged_turns(turns: list[TurnResult]) -> list[TurnResult]:
    """The turns the model can be judged on: all but those the backend failed (error turns)."""
    return [t for t in turns if t.status != "error"]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


INTERRUPTED = "interrupted"  # the error of a probe conversation stopped before its end (Ctrl-C)


@dataclass
class ProbeReport:
    model: str
    base_url: str
    seed: int
    turns_requested: int
    repair: bool
    stream: bool
    turns: list[TurnResult] = field(default_factory=list)
    error: str | None = None  # the probe stopped early: the backend cannot be reached, refused us, ...
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        complete = self.error is None and len(self.turns) == self.turns_requested
        return complete and all(t.valid for t in self.turns)

    @property
    def verdict(self) -> str:
        """"pass" every turn valid; "fail" the model failed a turn; "incomplete" the probe stopped early or the
        backend failed a turn (an error turn, not the model's failure) and the model failed none."""
        if self.ok:
            return "pass"
        if self.error is None and any(t.status == "invalid" for t in self.turns):
            return "fail"
        return "incomplete"

    @property
    def unjudged(self) -> str | None:
        """Why a run that was not stopped is incomplete: the turns the backend failed, by kind."""
        errors = [t for t in self.turns if t.status == "error"]
        if self.verdict != "incomplete" or self.error is not None or not errors:
            return None
        return (f"{len(errors)} of {len(self.turns)} turns could not be judged: the backend failed them "
                f"({_kinds(_failures(errors))}), which is not the model's failure")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "seed": self.seed, "turns_requested":
                self.turns_requested, "repair": self.repair, "stream": self.stream, "ok": self.ok,
                "verdict": self.verdict,
                "error": self.error, "wall_s": round(self.wall_s, 3), "summary": summarize(self.turns),
                "turns": [t.to_dict() for t in self.turns]}


def _secs(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{1000 * x:.0f}ms" if x < 1 else f"{x:.2f}s"


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _failures(turns: list[TurnResult]) -> dict[str, int]:
    return dict(sorted(Counter(t.failure for t in turns if t.failure).items()))


def _tally(turns: list[TurnResult], what: str) -> str:
    """`N failed (kinds) at turn(s) a,b`: the count of `turns`, then their kinds and numbers when there are any."""
    if not turns:
        return f"0 {what}"
    return f"{len(turns)} {what} ({_kinds(_failures(turns))}) at turn(s) " + ",".join(str(t.turn) for t in turns)


def _validity(s: dict[str, Any]) -> str:
    """`7/9 valid (77.8%)`; over the judged turns when the backend failed some (`judged turns`)."""
    if not s["judged"]:
        return "no turn judged"
    of = f"{s['judged']} judged turns" if s["errors"] else str(s["turns"])
    return f"{s['valid']}/{of} valid ({100 * s['validity_rate']:.1f}%)"


def render_text(report: ProbeReport) -> str:
    mode = f"repair {'on' if report.repair else 'off'}, {'stream' if report.stream else 'non-stream'}"
    lines = [f"probe {report.model} at {report.base_url}: {report.turns_requested} turns, "
             f"seed {report.seed}, {mode}",
             f"{'turn':>4}  {'status':<9} {'call':<14} {'latency':>8} {'ttft':>7} {'cached':>7}  note"]
    for t in report.turns:
        name = t.calls[0]["name"] if t.calls else "-"
        note = ", ".join(t.repairs or []) if t.status == "repaired" else ""
        if t.failure:
            note = f"{t.failure}: {' '.join(t.detail.split())}"  # one line: a backend's error page has many
        elif not t.on_task:
            note = (note + "; " if note else "") + f"asked for {t.expected_tool}"
        status = t.status if t.valid else t.status.upper()
        cached = "-" if t.cached_tokens is None else str(t.cached_tokens)
        lines.append(f"{t.turn:>4}  {status:<9} {name[:14]:<14} {_secs(t.latency_s):>8} {_secs(t.ttft_s):>7} "
                     f"{cached:>7}  {note[:100]}")
    s = summarize(report.turns)
    if s["turns"]:
        repaired = f" ({_kinds(s['repairs'])})" if s["repairs"] else ""
        errors = [t for t in report.turns if t.status == "error"]
        unjudged = f", {_tally(errors, 'not judged')}" if errors else ""
        lines.append(f"{_validity(s)}, {s['repaired']} repaired{repaired}, "
                     f"{_tally([t for t in report.turns if t.status == 'invalid'], 'failed')}{unjudged}")
        speed = f", {s['tokens_per_s']:.1f} tok/s" if s["tokens_per_s"] else ""
        ttft = f", ttft p50 {_secs(s['ttft_p50_s'])}" if s["ttft_p50_s"] is not None else ""
        lines.append(f"latency p50 {_secs(s['latency_p50_s'])} p95 {_secs(s['latency_p95_s'])}{ttft}{speed}, "
                     f"cached {s['cached_tokens']} of {s['prompt_tokens']} prompt tokens")
    if report.error:
        lines.append(f"stopped: {report.error}")
    lines.append(report.verdict.upper())
    return "\n".join(lines)


class Progress:
    """A one-line progress bar on a terminal (stderr); silent when disabled or not a TTY."""

    WIDTH = 30

    def __init__(self, total: int, label: str = "probe", *, out: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.out = out if out is not None else sys.stderr
        self.enabled = enabled and self.out.isatty()
        self.total = max(total, 1)
        self.label = label
        self.counts: Counter[str] = Counter()

    def advance(self, status: str) -> None:
        self.counts[status] += 1
        if not self.enabled:
            return
        done = sum(self.counts.values())
        filled = self.WIDTH * done // self.total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        unjudged = f"  not judged {self.counts['error']}" if self.counts["error"] else ""
        self.out.write(f"\r{self.label} [{bar}] {done}/{self.total}  valid {self.counts['valid']}  "
                       f"repaired {self.counts['repaired']}  failed {self.counts['invalid']}{unjudged} ")
        self.out.flush()

    def close(self) -> None:
        if self.enabled and self.counts:
            self.out.write("\n")
            self.out.flush()
