"""`agentgate bench tools`: probe conversations for models × repair on/off × runs, run concurrently.

Each group (model, repair mode) reports its validity rate overall, by turn bucket (1-10, 11-20, ...) and
by turn, repairs and failures by kind, latency percentiles and tokens/s. `tokens_per_s` of a group is its
completion tokens over the summed request latency (what one request sees under this load);
`throughput_tokens_per_s` of the bench is every completion token over the bench's wall time.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ..config.model import shown_url
from .report import INTERRUPTED, ProbeReport, TurnResult, judged_turns, rate, summarize
from .runner import DEFAULT_BASE_URL, ProbeSettings, run_probe

BUCKET = 10
JSON_NAME = "tools.json"
TURNS_CSV = "tools-turns.csv"
SUMMARY_CSV = "tools-summary.csv"
PLOT_NAME = "tools-validity.png"


@dataclass(frozen=True)
class BenchSettings:
    models: tuple[str, ...]
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    turns: int = 40
    runs: int = 5
    concurrency: int = 4
    seed: int = 0  # run r uses seed + r, the same for every model and mode
    stream: bool = False
    timeout: float = 600.0
    max_tokens: int | None = 2048
    temperature: float | None = None
    modes: tuple[bool, ...] = (True, False)  # on, off
    axis: str = "repair"  # what the modes turn on and off: "repair" or "constrain" (a local engine's grammar)
    tool_choice: str = "auto"

    def probe(self, model: str, mode: bool, run: int) -> ProbeSettings:
        repair, constrain = (mode, True) if self.axis == "repair" else (True, mode)
        return ProbeSettings(model=model, base_url=self.base_url, api_key=self.api_key, turns=self.turns,
                             seed=self.seed + run, repair=repair, stream=self.stream, timeout=self.timeout,
                             max_tokens=self.max_tokens, temperature=self.temperature, constrain=constrain,
                             tool_choice=self.tool_choice)


@dataclass
class Run:
    model: str
    repair: bool  # the mode of the bench's axis (repair, or constrain with --ab constrain)
    run: int
    report: ProbeReport


@dataclass
class BenchResult:
    settings: BenchSettings
    runs: list[Run] = field(default_factory=list)
    wall_s: float = 0.0
    partial: bool = False  # stopped before every conversation ended (Ctrl-C): what was measured until then

    @property
    def errors(self) -> list[str]:
        return [f"{r.model} {self.settings.axis} {_mode(r.repair)} run {r.run}: {r.report.error}" for r in self.runs
                if r.report.error]

    @property
    def unjudged(self) -> str | None:
        """Why the measurement is incomplete though every conversation ran: the turns the backend failed (error
        turns, not judged), by kind; None when there are none."""
        turns = [t for r in self.runs for t in r.report.turns]
        errors = [t for t in turns if t.status == "error"]
        if not errors:
            return None
        kinds = summarize(errors)["error_kinds"]
        return (f"{len(errors)} of {len(turns)} turns could not be judged: the backend failed them "
                f"({', '.join(f'{k} {v}' for k, v in kinds.items())}), which is not the models' failure")

    def groups(self) -> list[dict[str, Any]]:
        out = []
        for model in self.settings.models:
            for repair in self.settings.modes:
                runs = [r for r in self.runs if r.model == model and r.repair == repair]
                out.append(group_summary(model, repair, runs, self.settings.turns))
        return out

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        completion = sum(t.completion_tokens or 0 for r in self.runs for t in r.report.turns)
        throughput = round(completion / self.wall_s, 2) if self.wall_s > 0 and completion else None
        return {
            "bench": "tools", "base_url": shown_url(s.base_url), "models": list(s.models), "turns": s.turns,
            "runs": s.runs, "concurrency": s.concurrency, "seed": s.seed, "stream": s.stream, "axis": s.axis,
            "tool_choice": s.tool_choice,
            "wall_s": round(self.wall_s, 3), "throughput_tokens_per_s": throughput, "partial": self.partial,
            "errors": self.errors, "groups": self.groups(),
            "conversations": [{"model": r.model, "repair": r.repair, "run": r.run, **r.report.to_dict()}
                              for r in self.runs],
        }


def _mode(repair: bool) -> str:
    return "on" if repair else "off"


def bucket_label(index: int) -> str:
    return f"{index * BUCKET + 1}-{(index + 1) * BUCKET}"


def group_summary(model: str, repair: bool, runs: list[Run], turns: int) -> dict[str, Any]:
    """A group's summary; its rates (overall, per bucket, per turn) are over the judged turns, as `summarize`'s."""
    all_turns = [t for r in runs for t in r.report.turns]
    judged = judged_turns(all_turns)
    by_turn: list[float | None] = []
    for n in range(1, turns + 1):
        at = [t for t in judged if t.turn == n]
        by_turn.append(rate(sum(t.valid for t in at), len(at)))
    buckets = []
    for b in range((turns + BUCKET - 1) // BUCKET):
        inside = [t for t in all_turns if (t.turn - 1) // BUCKET == b]
        seen = judged_turns(inside)
        valid = sum(t.valid for t in seen)
        buckets.append({"turns": bucket_label(b), "count": len(inside), "judged": len(seen), "valid": valid,
                        "validity_rate": rate(valid, len(seen))})
    return {"model": model, "repair": repair, "conversations": len(runs), **summarize(all_turns),
            "buckets": buckets, "by_turn": by_turn, "stopped": sum(r.report.error is not None for r in runs)}


async def run_bench(settings: BenchSettings, *, on_turn: Callable[[TurnResult], None] | None = None,
                    result: BenchResult | None = None) -> BenchResult:
    """All conversations, at most `concurrency` at a time (run-major order: models and modes interleave).

    `result` (a new one when not given) gets every conversation that began, even when the bench is cancelled
    (Ctrl-C): those in flight then are kept with the turns they had, stopped as `interrupted`."""
    result = BenchResult(settings) if result is None else result
    jobs = [(model, repair, run) for run in range(settings.runs) for model in settings.models
            for repair in settings.modes]
    ended: list[Run | None] = [None] * len(jobs)
    gate = asyncio.Semaphore(settings.concurrency)
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.concurrency)) as session:

            async def one(i: int, model: str, repair: bool, run: int) -> None:
                probe, turns = settings.probe(model, repair, run), list[TurnResult]()

                def seen(turn: TurnResult) -> None:
                    turns.append(turn)
                    if on_turn is not None:
                        on_turn(turn)

                async with gate:
                    try:
                        ended[i] = Run(model, repair, run, await run_probe(probe, session=session, on_turn=seen))
                    except (asyncio.CancelledError, KeyboardInterrupt):  # (the latter where the loop lets it in)
                        ended[i] = Run(model, repair, run, _interrupted(probe, turns))
                        raise

            await asyncio.gather(*(one(i, *job) for i, job in enumerate(jobs)))
    finally:
        result.runs = [r for r in ended if r is not None]
        result.wall_s = time.perf_counter() - started
    return result


def _interrupted(probe: ProbeSettings, turns: list[TurnResult]) -> ProbeReport:
    return ProbeReport(probe.model, shown_url(probe.base_url), probe.seed, probe.turns, probe.repair, probe.stream,
                       turns=turns, error=INTERRUPTED)


# --- output --------------------------------------------------------------------------------------------

def render_table(result: BenchResult) -> str:
    s = result.settings
    n_buckets = (s.turns + BUCKET - 1) // BUCKET
    buckets = " ".join(f"{bucket_label(b):>7}" for b in range(n_buckets))
    head = (f"{'model':<24} {s.axis[:9]:<9} {'valid':>7} {buckets} {'repaired':>8} {'p50':>7} {'p95':>7} "
            f"{'tok/s':>7}")
    lines = [f"bench tools: {len(s.models)} model(s) × {s.axis} on/off × {s.runs} run(s) × {s.turns} turns, "
             f"concurrency {s.concurrency}, {result.wall_s:.1f} s", head]
    for g in result.groups():
        cells = " ".join(f"{_pct(b['validity_rate']):>7}" for b in g["buckets"])
        lines.append(f"{g['model'][:24]:<24} {_mode(g['repair']):<9} {_pct(g['validity_rate']):>7} {cells} "
                     f"{g['repaired']:>8} {_secs(g['latency_p50_s']):>7} {_secs(g['latency_p95_s']):>7} "
                     f"{_num(g['tokens_per_s']):>7}")
    for g in result.groups():
        parts = [f"{what} " + ", ".join(f"{k} {v}" for k, v in g[key].items())
                 for what, key in (("repairs", "repairs"), ("failures", "failures"), ("not judged", "error_kinds"))
                 if g[key]]
        if parts:
            lines.append(f"  {g['model']} {s.axis} {_mode(g['repair'])}: {'; '.join(parts)}")
    unjudged = sum(t.status == "error" for r in result.runs for t in r.report.turns)
    if unjudged:
        lines.append(f"validity: valid turns of those judged ({unjudged} turn(s) the backend failed are not judged)")
    lines += [f"  stopped: {e}" for e in result.errors]
    if result.partial:
        lines.append(f"interrupted: partial results, {len(result.runs)} of {s.runs * len(s.models) * len(s.modes)} "
                     "conversations begun")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _secs(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{1000 * x:.0f}ms" if x < 1 else f"{x:.2f}s"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


TURN_FIELDS = ("model", "repair", "run", "seed", "turn", "status", "valid", "failure", "repairs",
               "diagnosis", "expected_tool", "called", "on_task", "latency_s", "ttft_s", "prompt_tokens",
               "completion_tokens", "cached_tokens")
SUMMARY_FIELDS = ("model", "repair", "conversations", "turns", "judged", "valid", "repaired", "invalid", "errors",
                  "validity_rate", "latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s",
                  "tokens_per_s", "prompt_tokens", "completion_tokens", "cached_tokens", "repairs",
                  "failures", "error_kinds")


def write_outputs(result: BenchResult, out: Path) -> tuple[list[Path], str | None]:
    """Writes the JSON and CSV files (and the plot when matplotlib is importable); the paths, and a note when
    the plot was skipped."""
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_dict()
    paths = [out / JSON_NAME, out / TURNS_CSV, out / SUMMARY_CSV]
    paths[0].write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    with paths[1].open("w", newline="") as f:
        writer = csv.DictWriter(f, TURN_FIELDS)
        writer.writeheader()
        for r in result.runs:
            for t in r.report.turns:
                writer.writerow({
                    "model": r.model, "repair": _mode(r.repair), "run": r.run, "seed": r.report.seed,
                    "turn": t.turn, "status": t.status, "valid": int(t.valid), "failure": t.failure or "",
                    "repairs": " ".join(t.repairs or []), "diagnosis": " ".join(t.diagnosis),
                    "expected_tool": t.expected_tool, "called": " ".join(c["name"] for c in t.calls),
                    "on_task": int(t.on_task), "latency_s": t.latency_s, "ttft_s": _blank(t.ttft_s),
                    "prompt_tokens": _blank(t.prompt_tokens),
                    "completion_tokens": _blank(t.completion_tokens),
                    "cached_tokens": _blank(t.cached_tokens)})
    with paths[2].open("w", newline="") as f:
        writer = csv.DictWriter(f, (*SUMMARY_FIELDS, *(f"valid_{bucket_label(i)}" for i in
                                                       range(len(doc["groups"][0]["buckets"]) if doc["groups"]
                                                             else 0))))
        writer.writeheader()
        for g in doc["groups"]:
            row = {k: _blank(g[k]) for k in SUMMARY_FIELDS}
            row["repair"] = _mode(g["repair"])
            for kinds in ("repairs", "failures", "error_kinds"):
                row[kinds] = " ".join(f"{k}={v}" for k, v in g[kinds].items())
            row.update({f"valid_{b['turns']}": _blank(b["validity_rate"]) for b in g["buckets"]})
            writer.writerow(row)
    note = write_plot(doc, out / PLOT_NAME)
    if note is None:
        paths.append(out / PLOT_NAME)
    return paths, note


def _blank(x: Any) -> Any:
    return "" if x is None else x


def write_plot(doc: dict[str, Any], path: Path) -> str | None:
    """Validity vs turn, one line per model and mode; a note instead when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'agentgate-router[plot]')"
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(10, 4.5))
    palette = plt.rcParams["axes.prop_cycle"].by_key().get("color") or ["C0", "C1"]
    overall = []
    axis = doc.get("axis", "repair")  # what was switched on and off: repair, or a local engine's constraint
    for i, g in enumerate(doc["groups"]):  # a colour per model and mode; solid: on, dashed: off
        rate = g.get("validity_rate")
        label = f"{g['model']} ({axis} {_mode(g['repair'])})"
        overall.append(f"{label} {100 * rate:.0f}%" if rate is not None else f"{label} -")
        points = [(n, r) for n, r in enumerate(g["by_turn"], 1) if r is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, [100 * y for y in ys], marker=".", linestyle="-" if g["repair"] else "--",
                    color=palette[i % len(palette)], label=label)
    ax.set_xlabel("turn")
    ax.set_ylabel("valid tool calls (% of judged runs)")
    ax.set_ylim(-2, 102)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"tool-call validity by turn — {doc['runs']} run(s), concurrency {doc['concurrency']}\n"
                 f"overall: {', '.join(overall)}", fontsize="medium")
    ax.grid(alpha=0.3)
    if doc["groups"]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
