"""GET /v1/models: every name the router answers to, aliases included, with availability."""

from __future__ import annotations

from aiohttp import web

from ..engines_bridge import engine_availability
from ..errors import ApiError
from ..state import STATE
from . import common


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rt = state.runtime
    try:
        key = common.authenticate(rt, request)
    except ApiError as err:
        return err.response()
    engines = state.supervisor.states() if state.supervisor is not None else {}
    data = []
    for row in rt.table.names():
        if key is not None and key.models is not None and row.id not in key.models \
                and row.model.name not in key.models:
            continue
        reason = rt.table.unavailable_reason(row.model)
        owner = row.model.targets[0].provider if row.model.targets else "agentgate"
        info: dict[str, object] = {"available": reason is None}
        if reason:
            info["reason"] = reason
        if row.alias_of:
            info["alias_of"] = row.alias_of
        if row.model.wildcard:
            info["wildcard"] = True
        if row.model.fallbacks:
            info["fallbacks"] = list(row.model.fallbacks)
        if row.model.engine is not None:
            st = engines.get(row.model.name)
            info["engine"] = getattr(st, "state", "stopped")
            ok, note = engine_availability(row.model.engine)
            if note:
                info["available"], info["reason"] = ok and info["available"], note
        if row.model.description:
            info["description"] = row.model.description
        data.append({"id": row.id, "object": "model", "created": 0,
                     "owned_by": owner.removeprefix("engine:") if owner.startswith("engine:") else owner,
                     "agentgate": info})
    return web.json_response({"object": "list", "data": data})
