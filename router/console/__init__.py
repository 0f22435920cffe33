"""The operator console at `/ui`: one static page (static/, served by the router: no build step, nothing from
elsewhere) and the JSON it reads under `/ui/api/`. See `api.py` for the routes and who may call them."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engines.supervisor.types import EngineStatus

from ..capture import CaptureRing, Redactor
from ..state import STATE, AppState
from .probe_job import ProbeRunner
from .rings import LogRing, RecentRequests


@dataclass
class Console:
    state: AppState
    requests: RecentRequests = field(default_factory=RecentRequests)
    log: LogRing = field(default_factory=LogRing)
    captures: CaptureRing | None = None
    probe: ProbeRunner = field(default_factory=ProbeRunner)
    _redactor: tuple[Any, Redactor] | None = None

    def observe(self, ex: Any, fields: dict[str, object]) -> None:
        """Called once per finished request, where the access log is written."""
        self.requests.observe(ex, fields)
        if ex.tool_output is None:
            return
        config = self.state.runtime.config.server.capture  # a reload may turn capture on, off, or resize it
        if config is None:
            return
        if self.captures is None:
            self.captures = CaptureRing(config)
        elif self.captures.config != config:
            self.captures.reconfigure(config)
        self.captures.offer(ex, ex.tool_output, self.redactor())

    def redactor(self) -> Redactor:
        """The redactor of the running config (rebuilt after a reload changed it)."""
        config = self.state.runtime.config
        if self._redactor is None or self._redactor[0] is not config:
            self._redactor = (config, Redactor.for_config(config))
        return self._redactor[1]

    @staticmethod
    def loading_for(status: EngineStatus) -> float | None:
        """How long the engine has been starting (from the supervisor's start time), None unless starting."""
        if status.state != "starting" or status.starting_since is None:
            return None
        return round(max(0.0, time.time() - status.starting_since), 1)


CONSOLE = web.AppKey("agentgate_console", Console)


def install(app: web.Application) -> Console:
    """Create the console's state and hook it to the request record; the routes are added in app.py."""
    state = app[STATE]
    capture = state.runtime.config.server.capture
    console = Console(state, captures=CaptureRing(capture) if capture is not None else None)
    state.metrics.request_observers.append(console.observe)
    app[CONSOLE] = console
    app.cleanup_ctx.append(_lifecycle)
    return console


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    console = app[CONSOLE]
    logger = logging.getLogger("agentgate")
    logger.addHandler(console.log)
    yield
    logger.removeHandler(console.log)
    await console.probe.close()
