"""Application state shared by handlers, stored under `web.AppKey`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engines.supervisor.types import EngineSupervisor

from .dialects import anthropic_in, responses
from .knownhistory import KnownHistory
from .live_config import LiveConfig
from .metrics import Metrics
from .toolcache import ToolIndexCache


@dataclass
class AppState:
    runtime: LiveConfig  # swapped whole on reload; a request keeps the one it started with
    metrics: Metrics
    supervisor: EngineSupervisor | None  # None: no engine in the config
    config_path: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # server settings the command line set (they win over
    # the file's on every reload too)
    tool_indexes: ToolIndexCache = field(default_factory=ToolIndexCache)  # survives reloads: keyed by content
    known_history: KnownHistory = field(default_factory=KnownHistory)  # likewise
    messages_memos: anthropic_in.Translations = field(default_factory=anthropic_in.Translations)  # likewise
    responses_memos: responses.Translations = field(default_factory=responses.Translations)  # likewise


STATE = web.AppKey("agentgate_state", AppState)
