"""Liveness (/health) and readiness (/ready) with per-provider breaker and engine states."""

from __future__ import annotations

from aiohttp import web

from .. import auth
from ..config.model import all_secrets
from ..redact import scrub_text
from ..state import STATE


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Needs a client key when keys are configured (it names providers and engines)."""
    state = request.app[STATE]
    rt = state.runtime
    auth.client_key(rt.keys, request.headers, rt.config.server)  # a refusal is answered by the route's guard (app.py)
    providers = {
        name: {"type": up.kind, "breaker": up.breaker.state, "in_flight": up.outstanding,
               "queued": up.limiter.queued, **({"disabled": up.disabled_reason} if up.disabled_reason else {})}
        for name, up in rt.upstreams.items() if up.kind != "engine"
    }
    engines = {}
    secrets = all_secrets(rt.config)  # an engine's last error is what it printed: its credentials too
    if state.supervisor is not None:
        for name, st in state.supervisor.states().items():
            engines[name] = {"state": st.state, "in_flight": st.in_flight, "restarts": st.restarts,
                             **({"last_error": scrub_text(st.last_error, secrets)} if st.last_error else {})}
    return web.json_response({"status": "ready", "config": rt.config.source, "providers": providers,
                              "engines": engines})
