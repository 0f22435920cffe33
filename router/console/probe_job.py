"""One probe at a time, started from the console against the router itself; the page polls its progress."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..probe.report import TurnResult, summarize
from ..probe.runner import ProbeSettings, run_probe

MAX_TURNS = 40
TURN_TIMEOUT = 300.0


@dataclass
class ProbeJob:
    model: str
    turns: int
    repair: bool
    tool_choice: str = "auto"
    started: float = field(default_factory=time.time)
    results: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"  # running | done | failed
    error: str | None = None
    summary: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "turns_requested": self.turns, "repair": self.repair,
                "tool_choice": self.tool_choice, "state": self.state,
                "started": round(self.started, 3), "error": self.error, "turns": self.results,
                "summary": self.summary}


class ProbeRunner:
    def __init__(self) -> None:
        self.job: ProbeJob | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.state == "running"

    def start(self, base_url: str, api_key: str | None, model: str, turns: int, repair: bool,
              tool_choice: str = "auto") -> ProbeJob:
        job = self.job = ProbeJob(model, min(max(1, turns), MAX_TURNS), repair, tool_choice)
        settings = ProbeSettings(model=model, base_url=base_url, api_key=api_key, turns=job.turns, repair=repair,
                                 timeout=TURN_TIMEOUT, max_tokens=512 if tool_choice == "auto" else 64,
                                 tool_choice=tool_choice)

        def on_turn(turn: TurnResult) -> None:
            job.results.append(turn.to_dict())

        async def run() -> None:
            try:
                report = await run_probe(settings, on_turn=on_turn)
                job.error = report.error
                job.summary = summarize(report.turns)
                job.state = "done" if report.error is None else "failed"
            except Exception as exc:  # reported on the page, never raised into the loop
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"

        job.task = asyncio.ensure_future(run())
        return job

    async def close(self) -> None:
        if self.job is not None and self.job.task is not None and not self.job.task.done():
            self.job.task.cancel()
            await asyncio.gather(self.job.task, return_exceptions=True)
