"""The console's routes.

    GET  /ui, /ui/, /ui/static/{file}     the page, its script and style
    GET  /ui/api/state                    engines, providers, models and aliases, usage by key, capture status
    GET  /ui/api/requests?after=SEQ       recent requests (the access log's records), newest last ("epoch": whose
                                          numbers: new after a restart, when SEQ counts from 0 again)
    GET  /ui/api/log?after=SEQ            recent log lines (with its "epoch" too)
    GET  /ui/api/captures?after=ID        the capture ring (summaries) after ID, oldest first, a page at a time
                                          ("more" while there is more; "oldest": the oldest id still kept;
                                          "epoch": the ring's instance, new after a restart);
                                          /ui/api/captures/{id} one capture in full;
                                          /ui/api/captures.jsonl all of them, as `agentgate repair --replay` reads
    POST /ui/api/engines/{name}/unload    stop an engine (actions need a JSON body)
    POST /ui/api/probe                    {"model", "turns", "repair", "tool_choice"}: start a probe here
    GET  /ui/api/probe                    its progress and per-turn results

Every `/ui` route needs what `/admin/reload` needs (with keys configured, an unrestricted key, unless
`server.admin_auth: false`), as a bearer token or as HTTP Basic credentials (the browser asks for them): the console
shows every model, every key's usage and captured model output.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import auth
from ..api import common
from ..api.ops import engine_stats_doc
from ..api.swap import engine_entry, stop_engines, ttl_left
from ..chat_types import member
from ..config.model import ClientKey, all_secrets
from ..engines_bridge import engine_availability
from ..errors import ApiError
from ..redact import scrub_text, scrub_value
from ..state import STATE, AppState
from . import CONSOLE, Console

CAPTURE_PAGE = 100  # capture summaries per answer; the page asks again while "more" is true
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The page may load nothing from elsewhere, and nothing may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


def _static_dir() -> Path:
    return Path(str(resources.files("router.console").joinpath("static")))


async def page(request: web.Request) -> web.StreamResponse:
    _guard(request)
    if request.path == "/ui":
        raise web.HTTPFound("/ui/")
    return _static("index.html")


async def static(request: web.Request) -> web.StreamResponse:
    _guard(request)
    return _static(request.match_info["file"])


def _static(name: str) -> web.Response:
    folder = _static_dir()
    path = folder / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise ApiError(404, f"No console file {name[:100]!r}.", "not_found")
    return web.Response(body=path.read_bytes(), headers={"Content-Type": STATIC_TYPES[path.suffix] + "; charset=utf-8",
                                                         **SECURITY_HEADERS})


def _guard(request: web.Request, *, action: bool = False) -> Console:
    """What /admin/reload requires, the key also accepted as HTTP Basic credentials (any user name, the key as the
    password) so that a browser asks for it and sends it with everything under /ui/. Without keys (or with
    `admin_auth: false`), a Host that names this machine (a page that re-points its own domain at 127.0.0.1 cannot
    read the console). Actions need a JSON body (a form on another site cannot send one without the browser asking
    this router first, which it never allows)."""
    rt = request.app[STATE].runtime
    if rt.keys and rt.config.server.admin_auth:
        key = _console_key(request)
        if key is None:
            raise ApiError(401, "The console needs a client key: any user name, the key as the password.",
                           "invalid_api_key", headers={"WWW-Authenticate": auth.BASIC_CHALLENGE})
        auth.require_unrestricted(key, "open the console")
    elif not auth.local_host(request.host, rt.config.server.host):
        raise ApiError(403, "Without client keys the console answers only to an IP address, localhost or the "
                       "configured server.host in the Host header.", "host_not_allowed")
    if action and request.content_type != "application/json":
        raise ApiError(415, "Send the request as application/json.", "unsupported_media_type")
    return request.app[CONSOLE]


def _console_key(request: web.Request) -> ClientKey | None:
    headers = request.headers
    return auth.find_key(request.app[STATE].runtime.keys, auth.basic_password(headers) or auth.bearer(headers))


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.json_response(doc, status=status, headers={"Cache-Control": "no-store"})


def _after(request: web.Request, name: str = "after") -> int:
    try:
        return max(0, int(request.query.get(name, "0")))
    except ValueError:
        raise ApiError(400, f"'{name}' must be an integer.", "invalid_request", param=name) from None


# --- state ---------------------------------------------------------------------------------------------------------

async def state(request: web.Request) -> web.Response:
    console = _guard(request)
    st = request.app[STATE]
    rt = st.runtime
    from .. import version

    return _json({
        "version": version(), "config": rt.config.source, "now": round(time.time(), 3),
        "engines": await _engines(console, st),
        "providers": _providers(st, console.requests.attempts()),
        "models": _models(st),
        "keys": [{"name": k, "requests": u[0], "prompt_tokens": u[1], "completion_tokens": u[2]}
                 for k, u in sorted(st.metrics.key_usage.items())],
        "capture": {"enabled": rt.config.server.capture is not None,
                    "count": len(console.captures) if console.captures is not None else 0},
        "probe": console.probe.job.to_dict() if console.probe.job is not None else None,
    })


async def _engines(console: Console, st: AppState) -> list[dict[str, Any]]:
    supervisor = st.supervisor
    if supervisor is None:
        return []
    entries = {m.name: m for m in st.runtime.config.models if m.engine is not None}
    states = supervisor.states()
    ready = [n for n, s in states.items() if s.state == "ready"]
    found = await asyncio.gather(*(engine_stats_doc(supervisor, n) for n in ready))
    stats = dict(zip(ready, found, strict=True))
    rows = []
    secrets = all_secrets(st.runtime.config)  # an engine's last error is what it printed: its credentials too
    for name, s in states.items():
        entry = entries.get(name)
        engine = entry.engine if entry is not None else None
        ttl = engine.ttl if engine is not None else None
        doc = stats.get(name) or {}
        cache, memory = member(doc, "cache"), member(doc, "memory")
        rows.append({
            "name": name, "kind": engine.kind if engine else None, "model": engine.model if engine else None,
            "state": s.state, "pid": s.pid, "in_flight": s.in_flight, "restarts": s.restarts,
            "last_error": scrub_text(s.last_error, secrets) if s.last_error else s.last_error,
            "load_seconds": s.load_seconds,
            "loading_for": console.loading_for(s),
            "ttl": ttl, "ttl_left": ttl_left(s, ttl), "preload": bool(engine and engine.preload),
            "batch": doc.get("running"), "max_batch": doc.get("max_batch"), "queue": doc.get("queue"),
            "cache_hits": cache.get("hits"), "cache_misses": cache.get("misses"),
            "cache_hit_tokens": cache.get("hit_tokens"), "cache_bytes": cache.get("bytes"),
            "prompt_tokens": member(doc, "tokens").get("prompt"),
            "memory_active": memory.get("active"), "memory_peak": memory.get("peak"),
            "rss_bytes": _rss(s.pid),
        })
    return rows




def _rss(pid: int | None) -> int | None:
    """Resident memory of an engine process (Linux /proc; None elsewhere)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _providers(st: AppState, attempts: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Each cloud provider's state, and its error rate: its failed attempts over its attempts, in the recent
    requests (`RecentRequests.attempts`)."""
    rows = []
    for name, up in st.runtime.upstreams.items():
        if up.kind == "engine":
            continue
        tried, errors = attempts.get(name, (0, 0))
        rows.append({"name": name, "type": up.kind, "base_url": up.config.shown_url, "breaker": up.breaker.state,
                     "in_flight": up.outstanding, "queued": up.limiter.queued,
                     "max_concurrency": up.config.policy.max_concurrency, "disabled": up.disabled_reason,
                     "recent_requests": tried, "recent_errors": errors,
                     "error_rate": round(errors / tried, 4) if tried else None})
    return rows


def _models(st: AppState) -> list[dict[str, Any]]:
    rt = st.runtime
    engines = st.supervisor.states() if st.supervisor is not None else {}
    rows = []
    for row in rt.table.names():
        m = row.model
        reason = rt.table.unavailable_reason(m)
        info: dict[str, Any] = {"id": row.id, "alias_of": row.alias_of, "available": reason is None,
                                "reason": reason, "wildcard": m.wildcard, "fallbacks": list(m.fallbacks),
                                "providers": sorted({t.provider for t in m.targets if not t.provider.startswith(
                                    "engine:")}), "engine": None, "repair": m.repair.mode}
        if m.engine is not None:
            s = engines.get(m.name)
            info["engine"] = getattr(s, "state", "stopped")
            ok, note = engine_availability(m.engine)
            if note:
                info["available"], info["reason"] = ok and info["available"], note
        rows.append(info)
    return rows


# --- requests, log, captures -----------------------------------------------------------------------------------------

async def requests_(request: web.Request) -> web.Response:
    console = _guard(request)
    rows = _without_secrets(request, console.requests.after(_after(request)))  # (a request id the client chose)
    return _json({"requests": rows, "last": console.requests.last, "epoch": console.requests.epoch})


async def log_lines(request: web.Request) -> web.Response:
    console = _guard(request)
    lines = _without_secrets(request, console.log.after(_after(request)))  # (what an engine or an upstream said)
    return _json({"lines": lines, "last": console.log.last, "epoch": console.log.epoch})


def _without_secrets(request: web.Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with the running config's secrets redacted, literal or escaped (judged when the console asks, not on
    every request: the rows are written far more often than read)."""
    secrets = all_secrets(request.app[STATE].runtime.config)
    if not secrets:
        return rows
    text = json.dumps(rows, ensure_ascii=False, default=str)
    if scrub_text(text, secrets) == text:  # the usual case: one look at all of it, not one per string
        return rows
    return [scrub_value(row, secrets) for row in rows]


async def captures(request: web.Request) -> web.Response:
    console = _guard(request)
    ring = console.captures
    enabled = request.app[STATE].runtime.config.server.capture is not None
    if ring is None:
        return _json({"enabled": enabled, "epoch": None, "oldest": 1, "last": 0, "more": False, "captures": []})
    items = ring.list(_after(request), limit=CAPTURE_PAGE + 1)
    return _json({"enabled": enabled, "epoch": ring.epoch, "oldest": ring.oldest, "last": ring.last,
                  "more": len(items) > CAPTURE_PAGE, "captures": [c.summary() for c in items[:CAPTURE_PAGE]]})


async def capture(request: web.Request) -> web.Response:
    console = _guard(request)
    try:
        cid = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "No such capture.", "not_found") from None
    found = console.captures.get(cid) if console.captures is not None else None
    if found is None:
        raise ApiError(404, f"Capture {cid} is not (or no longer) in the ring.", "not_found")
    return _json(found.to_dict())


async def captures_jsonl(request: web.Request) -> web.Response:
    console = _guard(request)
    items = console.captures.list() if console.captures is not None else []
    body = "".join(json.dumps(c.to_dict(), ensure_ascii=False, default=str) + "\n" for c in items)
    return web.Response(text=body, content_type="application/x-ndjson", headers={
        "Content-Disposition": 'attachment; filename="agentgate-captures.jsonl"', "Cache-Control": "no-store"})


# --- actions -------------------------------------------------------------------------------------------------------

async def unload(request: web.Request) -> web.Response:
    _guard(request, action=True)
    st = request.app[STATE]
    if st.supervisor is None:
        raise ApiError(404, "No local engines are configured.", "engine_not_found")
    entry = engine_entry(st.runtime, request.match_info["name"])
    return _json({"status": "ok", "unloaded": await stop_engines(st.supervisor, [entry.name])})


async def probe_start(request: web.Request) -> web.Response:
    console = _guard(request, action=True)
    rt = request.app[STATE].runtime
    _, body = await common.read_json(request, rt)
    model = common.require_model(body)
    turns = body.get("turns", 10)
    if not isinstance(turns, int) or isinstance(turns, bool) or not 1 <= turns <= 40:
        raise ApiError(400, "'turns' must be an integer from 1 to 40.", "invalid_request", param="turns")
    tool_choice = body.get("tool_choice", "auto")
    if tool_choice not in ("auto", "required"):
        raise ApiError(400, "'tool_choice' must be \"auto\" or \"required\".", "invalid_request", param="tool_choice")
    rt.table.resolve(model)  # 404 now rather than a failed first turn
    if console.probe.busy:
        raise ApiError(409, "A probe is already running; wait for it to finish.", "probe_running")
    key = _console_key(request) if rt.keys else None
    if rt.keys and key is None:  # admin_auth: false opens the console without one, but /v1 still needs it
        raise ApiError(401, "The probe calls /v1 as you: give the console a client key (any user name, the key as "
                       "the password).", "invalid_api_key", headers={"WWW-Authenticate": auth.BASIC_CHALLENGE})
    job = console.probe.start(_own_url(request) + "/v1", key.key if key is not None else None, model, turns,
                              body.get("repair", True) is not False, tool_choice)
    return _json(job.to_dict(), status=202)


async def probe_status(request: web.Request) -> web.Response:
    console = _guard(request)
    job = console.probe.job
    return _json(job.to_dict() if job is not None else {"state": "idle"})


def _own_url(request: web.Request) -> str:
    """This router, as reached on the socket the request came in on (never what the Host header claims)."""
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not sock:
        raise ApiError(503, "Cannot tell this router's address.", "unavailable")
    host, port = sock[0], sock[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
