"""What one loaded config turns into: the routing table and one live `Upstream` per provider.

A reload builds a new `LiveConfig`, reusing the upstreams whose provider config did not change (their pools,
breakers and limiters live on); requests in flight keep the one they started with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engines.supervisor.types import EngineSupervisor

from .config.model import ClientKey, Config, ProviderConfig
from .metrics import Metrics
from .routing import RoutingTable
from .upstream.base import Upstream
from .upstream.engine import EngineUpstream
from .upstream.openai import OpenAIUpstream

log = logging.getLogger("agentgate")


def make_upstream(cfg: ProviderConfig, supervisor: EngineSupervisor | None) -> Upstream:
    if cfg.type == "engine":
        if supervisor is None:
            raise ValueError(f"provider {cfg.name!r} is an engine, and no engine supervisor runs")
        return EngineUpstream(cfg, supervisor)
    if cfg.type == "anthropic":
        from .upstream.anthropic import AnthropicUpstream

        return AnthropicUpstream(cfg)
    return OpenAIUpstream(cfg)


@dataclass(slots=True)
class Holders:
    """How many requests use a runtime right now (counted by `api.common.handle_exchange`): the upstreams a reload
    drops stay open until none does."""

    count: int = 0


@dataclass
class LiveConfig:
    config: Config
    table: RoutingTable
    upstreams: dict[str, Upstream]
    keys: tuple[ClientKey, ...] = field(default=())
    holders: Holders = field(default_factory=Holders, compare=False, repr=False)

    @classmethod
    def build(cls, config: Config, metrics: Metrics, supervisor: EngineSupervisor | None,
              previous: LiveConfig | None = None) -> LiveConfig:
        upstreams: dict[str, Upstream] = {}
        for name, pcfg in config.providers.items():
            old = previous.upstreams.get(name) if previous else None
            if old is not None and old.config == pcfg:
                upstreams[name] = old
                continue
            up = make_upstream(pcfg, supervisor)
            up.breaker.on_change = lambda state, n=name: metrics.set_breaker(n, state)
            metrics.set_breaker(name, up.breaker.state)
            upstreams[name] = up
            if pcfg.disabled_reason:
                log.warning("provider %s disabled: %s", name, pcfg.disabled_reason)
        return cls(config=config, table=RoutingTable(config), upstreams=upstreams, keys=config.server.api_keys)
