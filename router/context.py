"""One request as everything below the routes sees it, built once at the route (`api/common.py`).

The layers below `api/` (pipeline, dispatch, relay's reader, metrics) never see the aiohttp request: what they
read from it (the key, the opt-out headers, the request id) and what the route decided (the route, the runtime
the request keeps whatever a reload does meanwhile) travel here, in one frozen value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engines.wire import REPAIR_HEADER  # "off": no tool-call repair for this request

from .chat_types import HistoryIds
from .config.model import ClientKey, RepairPolicy, ServerConfig
from .exchange import Exchange
from .knownhistory import KnownHistory
from .live_config import LiveConfig
from .metrics import Metrics
from .routing import Route
from .toolcache import ToolIndexCache

CONSTRAIN_HEADER = "x-agentgate-constrain"  # "off": a local engine decodes without a grammar


def upstream_headers(request_id: str, headers: Mapping[str, str], repair_mode: str = "repair") -> dict[str, str]:
    """What goes upstream besides the body: the request id, and the repair and constraint opt-outs (local
    engines honour them): the client's, or the model entry's repair mode when it is not "repair" (so a local
    engine repairs in that mode, and with "off" adds no report a client would see). Client credentials never do."""
    out = {"x-request-id": request_id}
    for name in (REPAIR_HEADER, CONSTRAIN_HEADER):
        if headers.get(name, "").lower() == "off":
            out[name] = "off"
    if repair_mode != "repair":
        out.setdefault(REPAIR_HEADER, repair_mode)
    return out


@dataclass(frozen=True, slots=True)
class RequestContext:
    exchange: Exchange  # the request's record, filled in along the way and written once at the end
    route: Route
    key: ClientKey | None
    runtime: LiveConfig  # the routing table and upstreams this request uses from start to end
    metrics: Metrics
    tool_indexes: ToolIndexCache
    upstream_headers: Mapping[str, str]  # see `upstream_headers`
    history: KnownHistory | None = None  # the resent conversations known by their bytes (see `taken_ids`)

    def taken_ids(self, body: Mapping[str, Any]) -> HistoryIds:
        """The call ids `body`'s history holds, those of its known first messages read once per conversation."""
        messages = body.get("messages")
        return HistoryIds(messages, self.history.prefix(messages) if self.history is not None else None)

    @property
    def request_id(self) -> str:
        return self.exchange.request_id

    @property
    def limits(self) -> ServerConfig:
        return self.runtime.config.server

    @property
    def repair(self) -> RepairPolicy:
        return self.route.model.repair

    @property
    def repair_off(self) -> bool:
        """The client (or the model entry) turned repair off for this request."""
        return self.upstream_headers.get(REPAIR_HEADER) == "off"
