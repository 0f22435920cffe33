"""llama-swap's endpoints: GET /running, POST /unload (all or one), preload, /upstream/{model}/... — against a real
supervised engine process (tests/ops/stats_engine.py, run as a `command:` engine)."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import aiohttp

from tests.waiting import wait_until

STATS_ENGINE = Path(__file__).resolve().parents[1] / "ops" / "stats_engine.py"
KEY, LIMITED = "sk-console-test-0123456789", "sk-limited-test-0123456789"


def config(*, preload: bool = False, keys: bool = False) -> str:
    auth = f"server:\n  api_keys: [{KEY}, {{key: {LIMITED}, name: ci, models: [local]}}]\n" if keys else ""
    return auth + f"""
models:
  - name: local
    command: ["{sys.executable}", "{STATS_ENGINE}"]
    aliases: [local-alias]
    ttl: 600
    start_timeout: 30
    preload: {str(preload).lower()}
  - name: idle
    command: ["{sys.executable}", "{STATS_ENGINE}"]
    start_timeout: 30
"""


async def call(method: str, url: str, key: str | None = None, **kw: Any) -> tuple[int, Any]:
    headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **kw.pop("headers", {})}
    async with aiohttp.ClientSession() as s, s.request(method, url, headers=headers, **kw) as resp:
        body = await resp.read()
        try:
            import json

            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body.decode()


async def test_running_unload_and_upstream(router) -> None:
    r = await router(config())
    sup = r.state.supervisor
    assert await call("GET", r.url + "/running") == (200, {"running": []})

    status, doc = await call("GET", r.url + "/upstream/local-alias/stats")  # an alias works; the engine starts
    assert status == 200 and doc["running"] == 3 and doc["cache"]["hit_tokens"] == 24
    status, doc = await call("GET", r.url + "/running")
    assert status == 200 and [row["model"] for row in doc["running"]] == ["local"]
    row = doc["running"][0]
    assert row["state"] == "ready" and row["ttl"] == 600 and 0 < row["ttl_left"] <= 600 and row["pid"] > 0

    status, doc = await call("POST", r.url + "/upstream/local/v1/chat/completions",
                             json={"model": "local", "messages": [{"role": "user", "content": "x"}]})
    assert status == 200 and doc["choices"][0]["message"]["content"] == "local"
    status, doc = await call("GET", r.url + "/upstream/local/no-such-route")
    assert status == 404  # the engine's own answer, passed through

    status, doc = await call("POST", r.url + "/unload/local")
    assert status == 200 and doc == {"status": "ok", "unloaded": ["local"]}
    assert sup.states()["local"].state == "stopped"
    assert (await call("GET", r.url + "/running"))[1] == {"running": []}

    await r.client().chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
    await r.client().chat.completions.create(model="idle", messages=[{"role": "user", "content": "x"}])
    status, doc = await call("GET", r.url + "/unload")  # llama-swap's clients use GET for "unload everything"
    assert status == 200 and sorted(doc["unloaded"]) == ["idle", "local"]
    assert {s.state for s in sup.states().values()} == {"stopped"}


async def test_upstream_forwards_the_path_as_sent_and_cuts_a_failed_answer(router) -> None:
    r = await router(config())
    status, doc = await call("POST", r.url + "/upstream/local/echo/a%2Fb%3Fc/d?x=%26y&z=1",
                             headers={"Cookie": "c=1", "X-Api-Key": "k", "X-Custom": "1"})
    assert status == 200 and doc["raw_path"] == "/echo/a%2Fb%3Fc/d?x=%26y&z=1"  # not re-split or re-queried
    assert "x-custom" in doc["headers"] and not {"cookie", "x-api-key", "authorization"} & set(doc["headers"])

    # the engine's answer stops half way: the client's body is cut short (an error on its side), never completed,
    # never a second status line inside it, never a wait for an end that does not come
    async with aiohttp.ClientSession() as s, s.get(r.url + "/upstream/local/cut") as resp:
        assert resp.status == 200
        try:
            body = await asyncio.wait_for(resp.read(), 10)
        except aiohttp.ClientPayloadError:
            body = None
    assert body is None
    host, port = r.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /upstream/local/cut HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 10)  # the router closes the connection
    writer.close()
    assert raw.count(b"HTTP/1.1") == 1 and b"partial " in raw and not raw.endswith(b"0\r\n\r\n")
    status, doc = await call("GET", r.url + "/upstream/local/stats")  # the router and the engine go on
    assert status == 200 and doc["model"] == "stats-engine"


async def test_a_client_that_stops_reading_an_upstream_answer_lets_the_engine_go(router) -> None:
    """An engine's answer too large for the sockets' buffers, to a client that keeps its connection open but reads
    no more: the relay's write waited for it without end, holding the engine's lease (it could not be unloaded or
    evicted) and the request in flight. It now ends as a stream's does, once no byte left for
    `server.idle_timeout`."""
    from router.drain import IN_FLIGHT
    from tests.stalled_client import stalled

    r = await router("server: {idle_timeout: 1}\n" + config())
    status, _ = await call("GET", r.url + "/upstream/local/stats")  # the engine is up
    assert status == 200
    engine = lambda: r.state.supervisor.states()["local"]  # noqa: E731
    sock, head = await stalled(r.url, b"GET /upstream/local/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:  # the answer began; then no more reads
        assert head.startswith(b"HTTP/1.1 200"), head
        await wait_until(lambda: engine().in_flight == 1)
        await wait_until(lambda: engine().in_flight == 0 and not r.app[IN_FLIGHT]._tasks, timeout=8)
    finally:
        sock.close()
    status, doc = await call("GET", r.url + "/upstream/local/stats")  # the router and the engine go on
    assert status == 200 and doc["model"] == "stats-engine"


async def test_a_stalled_request_body_under_upstream_gets_408(router) -> None:
    """A client that sends part of its body and then nothing, keeping the connection open, held the handler
    without end (every other route answers 408 after `server.idle_timeout`). It now gets that 408, and the engine
    is never started for it."""
    r = await router("server: {idle_timeout: 1}\n" + config())
    host, port = r.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"POST /upstream/local/echo/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 8)
        assert head.startswith(b"HTTP/1.1 408"), head
    finally:
        writer.close()
    assert r.state.supervisor.states()["local"].state == "stopped"


async def test_a_compressed_request_body_reaches_the_engine_as_its_coding_says(router) -> None:
    """aiohttp's server decodes a gzip (deflate, br, zstd) body: the router sent the plain bytes on with the client's
    `Content-Encoding: gzip`, and the engine, told to gunzip plain JSON, answered 500. A coding aiohttp leaves
    alone goes on as sent, with its header."""
    r = await router(config())
    body = json.dumps({"model": "local", "messages": [{"role": "user", "content": "x"}]}).encode()
    status, doc = await call("POST", r.url + "/upstream/local/v1/chat/completions", data=gzip.compress(body),
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 200 and doc["choices"][0]["message"]["content"] == "local", doc
    status, doc = await call("POST", r.url + "/upstream/local/echo/x", data=zlib.compress(body),
                             headers={"Content-Encoding": "deflate"})
    assert status == 200 and doc["coding"] is None and doc["size"] == len(body)
    packed = gzip.compress(body)
    status, doc = await call("POST", r.url + "/upstream/local/echo/x", data=packed,
                             headers={"Content-Encoding": "x-packed"})
    assert status == 200 and doc["coding"] == "x-packed" and doc["size"] == len(packed)


async def test_the_fields_a_connection_header_names_stay_on_their_hop(router) -> None:
    """RFC 9110 section 7.6.1: a proxy removes each field the `Connection` header names; /upstream dropped only a
    fixed list, so the client's hop-scoped fields reached the engine and the engine's reached the client."""
    r = await router(config())
    status, doc = await call("GET", r.url + "/upstream/local/echo/x", headers={
        "Connection": "keep-alive, X-Hop,x-hop2", "X-Hop": "1", "X-Hop2": "1", "X-Kept": "1"})
    assert status == 200 and "x-kept" in doc["headers"]
    assert not {"x-hop", "x-hop2"} & set(doc["headers"])
    async with aiohttp.ClientSession() as s, s.get(r.url + "/upstream/local/hop") as resp:
        assert resp.status == 200 and resp.headers["X-Engine-Kept"] == "1"
        assert "X-Engine-Hop" not in resp.headers and "X-Engine-Hop2" not in resp.headers


async def test_endless_health_and_stats_bodies_are_not_read(router) -> None:
    """An engine answering /health and /stats with a 200 whose body never ends: the status is what readiness needs
    (it starts), and a /metrics scrape reads at most 1 MiB of its stats (the router does not fill with them)."""
    import resource

    r = await router(f"""
models:
  - name: endless
    command: ["{sys.executable}", "{STATS_ENGINE}"]
    env: {{ENDLESS: "1"}}
    start_timeout: 30
""")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reply = await r.client().chat.completions.create(model="endless", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content == "local"
    status, text = await asyncio.wait_for(call("GET", r.url + "/metrics"), 10)
    assert status == 200 and "agentgate_" in text
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024  # KiB


async def test_unload_names_only_engines_that_were_running(router) -> None:
    r = await router(f"""
models:
  - name: broken
    command: ["{sys.executable}", "-c", "import sys; sys.exit(3)"]
    start_timeout: 30
""")
    status, _ = await call("POST", r.url + "/v1/chat/completions",
                           json={"model": "broken", "messages": [{"role": "user", "content": "x"}]})
    assert status == 503 and r.state.supervisor.states()["broken"].state == "failed"
    assert await call("POST", r.url + "/unload") == (200, {"status": "ok", "unloaded": []})
    assert await call("POST", r.url + "/unload/broken") == (200, {"status": "ok", "unloaded": []})


async def test_errors_name_the_problem(router, fakes) -> None:
    up = await fakes("cloud")
    r = await router(config() + f"""
  - {{name: remote, provider: cloud}}
providers:
  cloud: {{type: openai, base_url: "{up.url}"}}
""")
    status, doc = await call("POST", r.url + "/unload/remote")
    assert status == 404 and "served by a provider, not a local engine" in doc["error"]["message"]
    status, doc = await call("POST", r.url + "/unload/locl")
    assert status == 404 and "Did you mean: local" in doc["error"]["message"]
    status, doc = await call("GET", r.url + "/upstream/remote/v1/models")
    assert status == 404 and doc["error"]["code"] == "engine_not_found"
    assert r.state.supervisor.states()["local"].state == "stopped"  # nothing was started by a refused request


async def test_keys_guard_the_operator_endpoints(router) -> None:
    r = await router(config(keys=True))
    assert (await call("GET", r.url + "/running"))[0] == 401
    assert (await call("POST", r.url + "/unload"))[0] == 401
    assert (await call("GET", r.url + "/upstream/local/stats"))[0] == 401
    assert (await call("GET", r.url + "/running", LIMITED))[0] == 200
    status, doc = await call("POST", r.url + "/unload", LIMITED)
    assert status == 403 and doc["error"]["code"] == "admin_forbidden"
    status, doc = await call("GET", r.url + "/upstream/idle/stats", LIMITED)
    assert status == 403 and doc["error"]["code"] == "model_not_allowed"
    status, doc = await call("GET", r.url + "/upstream/local/stats", LIMITED)
    assert status == 200 and doc["model"] == "stats-engine"
    assert (await call("GET", r.url + "/upstream/idle/stats", KEY))[0] == 200
    running = {key: [row["model"] for row in (await call("GET", r.url + "/running", key))[1]["running"]]
               for key in (KEY, LIMITED)}
    assert running == {KEY: ["local", "idle"], LIMITED: ["local"]}  # a limited key sees its models only
    status, doc = await call("POST", r.url + "/unload", KEY)
    assert status == 200 and sorted(doc["unloaded"]) == ["idle", "local"]


async def test_preload_starts_listed_engines_with_the_router(router) -> None:
    r = await router(config(preload=True))
    sup = r.state.supervisor
    await wait_until(lambda: sup.states()["local"].state == "ready", timeout=30)
    assert sup.states()["idle"].state == "stopped"
    status, doc = await call("GET", r.url + "/running")
    assert status == 200 and [row["model"] for row in doc["running"]] == ["local"]


async def test_an_engine_name_with_a_slash_is_unloaded_by_its_path(router) -> None:
    """/upstream/team/local/... reached an engine named team/local, but /unload/team/local (and the
    /api/models/unload form) answered 404: only team%2Flocal matched."""
    r = await router(config().replace("name: local", "name: team/local").replace("[local-alias]", "[team/alias]"))
    sup = r.state.supervisor
    for unload in ("/unload/team/local", "/api/models/unload/team/alias"):
        status, _ = await call("GET", r.url + "/upstream/team/local/stats")
        assert status == 200 and sup.states()["team/local"].state == "ready"
        status, doc = await call("POST", r.url + unload)
        assert status == 200 and doc == {"status": "ok", "unloaded": ["team/local"]}, unload
        assert sup.states()["team/local"].state == "stopped"


async def test_an_upstream_answer_names_the_router_as_its_server(router) -> None:
    """The engine (an aiohttp server of its own) names aiohttp's and Python's versions in `Server`: an answer
    through `/upstream` says `agentgate`, as every other answer of the router does."""
    r = await router(config())
    async with aiohttp.ClientSession() as s, s.get(r.url + "/upstream/local/stats") as resp:
        assert resp.status == 200
        assert resp.headers.getall("Server") == ["agentgate"]
