"""Resolution of a requested model name into an ordered fallback chain of hops, each a set of replicas."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from .config.model import Config, ModelConfig, Target
from .errors import ApiError


@dataclass(frozen=True)
class Hop:
    """One model of the chain, with its replicas resolved to upstream model names."""

    model: ModelConfig
    targets: tuple[Target, ...]  # Target.model is always the concrete upstream name here


@dataclass(frozen=True)
class Route:
    requested: str
    model: ModelConfig  # the entry the name resolved to (its repair policy applies)
    hops: tuple[Hop, ...]


@dataclass(frozen=True)
class Listing:
    """One `/v1/models` row: a name the router answers to."""

    id: str
    model: ModelConfig
    alias_of: str | None


class RoutingTable:
    """Built once per config; `resolve` is a dict lookup on the hot path."""

    _CACHE_MAX = 4096

    def __init__(self, config: Config, disabled: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.disabled = dict(disabled or {p.name: p.disabled_reason for p in config.providers.values()
                                          if p.disabled_reason})
        self.exact: dict[str, ModelConfig] = {}
        self.wildcards: list[tuple[str, ModelConfig]] = []
        for m in config.models:
            if m.wildcard:
                self.wildcards.append((m.name[:-1], m))
            else:
                self.exact[m.name] = m
                for alias in m.aliases:
                    self.exact[alias] = m
        self.wildcards.sort(key=lambda item: len(item[0]), reverse=True)  # longest prefix wins
        self._cache: dict[str, Route] = {}

    def names(self) -> list[Listing]:
        rows: list[Listing] = []
        for m in self.config.models:
            rows.append(Listing(m.name, m, None))
            rows.extend(Listing(a, m, m.name) for a in m.aliases)
        return rows

    def lookup(self, name: str) -> tuple[ModelConfig, str] | None:
        """The entry for `name` and the suffix a wildcard matched ('' for exact names)."""
        m = self.exact.get(name)
        if m is not None:
            return m, ""
        for prefix, wm in self.wildcards:
            if name.startswith(prefix) and len(name) > len(prefix):
                return wm, name[len(prefix):]
        return None

    def resolve_for(self, name: str, allowed: frozenset[str] | None) -> Route:
        """`resolve` for a key limited to `allowed` model names (None: every model). 404 suggestions name only
        models the key may use; 403 when the name is not allowed; every hop of the fallback chain is checked too:
        hops to models outside the list are dropped (403 when none is left)."""
        if allowed is None:
            return self.resolve(name)
        try:
            route = self.resolve(name)
        except ApiError:
            raise self._unknown(name, allowed) from None
        if name not in allowed and route.model.name not in allowed:
            raise ApiError(403, f"This API key may not use model {name!r}.", "model_not_allowed")
        hops = tuple(h for h in route.hops if h.model.name in allowed or h.model is route.model)
        if not hops:
            raise ApiError(403, f"This API key may not use any model that {name!r} falls back to.",
                           "model_not_allowed")
        return route if len(hops) == len(route.hops) else Route(route.requested, route.model, hops)

    def resolve(self, name: str) -> Route:
        route = self._cache.get(name)
        if route is not None:
            return route
        found = self.lookup(name)
        if found is None:
            raise self._unknown(name)
        model, suffix = found
        hops: list[Hop] = []
        seen: set[str] = set()
        self._expand(model, name, suffix, hops, seen)
        route = Route(requested=name, model=model, hops=tuple(hops))
        if len(self._cache) < self._CACHE_MAX:
            self._cache[name] = route
        return route

    def _expand(self, model: ModelConfig, requested: str, suffix: str, hops: list[Hop], seen: set[str]) -> None:
        if model.name in seen:
            return
        seen.add(model.name)
        if model.targets:
            if model.wildcard:
                targets = tuple(Target(t.provider, suffix if t.model is None else t.model + suffix)
                                for t in model.targets)
            else:
                targets = tuple(Target(t.provider, t.model or model.name) for t in model.targets)
            hops.append(Hop(model, targets))
        for fb in model.fallbacks:
            self._expand(self.exact[fb], fb, "", hops, seen)

    def unavailable_reason(self, model: ModelConfig) -> str | None:
        """Why a model can never be served with the current config, or None when it can."""
        route_hops: list[Hop] = []
        self._expand(model, model.name, "x", route_hops, set())
        reasons = [f"provider {t.provider!r}: {self.disabled[t.provider]}"
                   for h in route_hops for t in h.targets if t.provider in self.disabled]
        usable = [t for h in route_hops for t in h.targets if t.provider not in self.disabled]
        return None if usable else "; ".join(reasons) or "no usable provider"

    def _unknown(self, name: str, allowed: frozenset[str] | None = None) -> ApiError:
        names = [n for n, m in self.exact.items() if allowed is None or n in allowed or m.name in allowed]
        if len(name) > 200:  # never echo (or fuzzy-match: quadratic) a huge name
            near, shown = [], repr(name[:200]) + "..."
        else:
            near, shown = difflib.get_close_matches(name, names, n=3, cutoff=0.5), repr(name)
        hint = f" Did you mean: {', '.join(near)}?" if near else ""
        return ApiError(404, f"The model {shown} does not exist on this router.{hint} "
                        "GET /v1/models lists the available models.", "model_not_found")
