"""GET /v1/models and /v1/models/{id}: every name the router answers to, aliases included, with availability.

OpenAI-shaped, or Anthropic-shaped when the request carries `anthropic-version` (Anthropic's SDKs and Claude Code
send it); a wildcard entry answers for any name it matches.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import auth
from ..engines_bridge import engine_availability
from ..errors import ApiError
from ..state import STATE


def anthropic_client(request: web.Request) -> bool:
    return "anthropic-version" in request.headers


def _anthropic_model(model_id: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": "1970-01-01T00:00:00Z"}


async def get_model(request: web.Request) -> web.Response:
    rt = request.app[STATE].runtime
    dialect = "anthropic" if anthropic_client(request) else "openai"
    model_id = request.match_info["id"]
    try:
        key = auth.client_key(rt.keys, request.headers, rt.config.server)
        found = rt.table.lookup(model_id)
        if found is None:
            raise ApiError(404, f"The model {model_id!r} does not exist.", "model_not_found")
        auth.check_model_allowed(key, model_id, found[0].name)
    except ApiError as err:
        return err.response(dialect)
    if dialect == "anthropic":
        return web.json_response(_anthropic_model(model_id))
    provider = found[0].targets[0].provider if found[0].targets else "agentgate"
    return web.json_response({"id": model_id, "object": "model", "created": 0,
                              "owned_by": provider.removeprefix("engine:")})


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rt = state.runtime
    try:
        key = auth.client_key(rt.keys, request.headers, rt.config.server)
    except ApiError as err:
        return err.response("anthropic" if anthropic_client(request) else "openai")
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
    if anthropic_client(request):
        listed = [_anthropic_model(str(d["id"])) for d in data]
        return web.json_response({"data": listed, "has_more": False, "first_id": listed[0]["id"] if listed else None,
                                  "last_id": listed[-1]["id"] if listed else None})
    return web.json_response({"object": "list", "data": data})
