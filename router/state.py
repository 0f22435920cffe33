"""Application state shared by handlers, stored under `web.AppKey`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .metrics import Metrics
from .runtime import Runtime
from .toolcache import ToolIndexCache


@dataclass
class AppState:
    runtime: Runtime  # swapped whole on reload; a request keeps the one it started with
    metrics: Metrics
    supervisor: Any  # engines.supervisor.Supervisor
    config_path: str | None = None
    tool_indexes: ToolIndexCache = field(default_factory=ToolIndexCache)  # survives reloads: keyed by content


STATE = web.AppKey("agentgate_state", AppState)
