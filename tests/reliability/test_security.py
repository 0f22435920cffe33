"""Nobody let in: keys on every route but /health, constant-time comparison, secrets kept out of logs, metrics,
errors and responses, loopback by default, size and concurrency limits, a private engine socket."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from router.app import Running, create_app, start
from router.config import parse_config
from router.logs import JsonFormatter, TextFormatter
from router.state import STATE
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of
from tests.reliability.support import (
    CLIENT_TIMEOUT,
    Answer,
    chat_body,
    parse_raw_response,
    raw_http,
    repair_ready,
    request,
)
from tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_KEY = "sk-client-CANARY-7f3a91"
OTHER_KEY = "sk-client-other-22"
UPSTREAM_KEY = "sk-upstream-CANARY-9b1c55"
PUBLIC = {"/health"}


class Gate:
    """A router app (with the API description route) served on 127.0.0.1."""

    def __init__(self, app: web.Application, running: Running) -> None:
        self.app, self.running, self.url = app, running, running.url

    def routes(self) -> list[tuple[str, str]]:
        """(method, concrete path) of every registered route; path parameters filled with `x`."""
        out = []
        for route in self.app.router.routes():
            info = route.resource.get_info() if route.resource is not None else {}
            path = info.get("path") or info.get("formatter") or ""
            if route.method == "*" or not path:
                continue
            out.append((route.method, re.sub(r"\{[^}]*\}", "x", path)))
        return sorted(set(out))


@pytest.fixture
async def gate() -> AsyncIterator[Callable[..., Awaitable[Gate]]]:
    started: list[Running] = []

    async def make(yaml_text: str) -> Gate:
        app = create_app(parse_config(yaml_text, env={}))
        running = await start(app)
        started.append(running)
        return Gate(app, running)

    yield make
    for running in started:
        await running.stop()


def keyed_config(url: str, *, metrics_auth: bool | None = None, extra_provider: str = "") -> str:
    auth = "" if metrics_auth is None else f"metrics_auth: {str(metrics_auth).lower()}, "
    return f"""
server: {{{auth}api_keys: [{{key: {CLIENT_KEY}, name: team}}, {{key: {OTHER_KEY}, name: other}}, sk-third-key]}}
providers:
  lab: {{type: openai, base_url: '{url}', api_key: {UPSTREAM_KEY}, retries: 1,
        backoff: {{base: 0.001, max: 0.002}}{extra_provider}}}
models:
  - {{name: m, provider: lab}}
  - {{name: renamed, provider: lab, model: up-m}}
"""


def body_for(path: str) -> bytes | None:
    if path == "/ui/api/probe":  # valid JSON the route refuses after authenticating (no probe left running)
        return json.dumps({"model": "m", "turns": 0}).encode()
    if path == "/v1/messages":
        return json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).encode()
    if path.startswith("/v1/responses"):
        return json.dumps({"model": "m", "input": "x"}).encode()
    if path == "/v1/embeddings":
        return json.dumps({"model": "m", "input": "x"}).encode()
    if path == "/v1/completions":
        return json.dumps({"model": "m", "prompt": "x"}).encode()
    return json.dumps(chat_body("m", "x")).encode()


@pytest.mark.parametrize("metrics_auth", [False, True])
async def test_every_route_but_health_needs_a_key(fakes, gate, metrics_auth):
    up = await fakes()
    g = await gate(keyed_config(up.url, metrics_auth=metrics_auth))
    routes = g.routes()
    assert ("GET", "/health") in routes and ("POST", "/v1/chat/completions") in routes
    public = PUBLIC | ({"/metrics"} if not metrics_auth else set())
    async with aiohttp.ClientSession() as s:
        for method, path in routes:
            data = body_for(path) if method in ("POST", "PUT", "PATCH") else None
            for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": f"Bearer {CLIENT_KEY.upper()}"},
                            {"x-api-key": "sk-wrong"}, {"Authorization": f"Basic {CLIENT_KEY}"},
                            {"Authorization": f"Bearer {CLIENT_KEY[:-1]}"}):
                ans = await request(s, method, g.url + path, data=data,
                                    headers={"Content-Type": "application/json", **headers})
                if path in public:
                    assert ans.status == 200, (method, path, ans.status)
                    continue
                assert ans.status == 401, (method, path, headers, ans.status, ans.body[:200])
                if method != "HEAD":
                    doc = ans.json()
                    assert "error" in doc and CLIENT_KEY not in ans.body.decode()
        # the right key opens the read-only routes
        for path in ("/v1/models", "/ready"):
            ans = await request(s, "GET", g.url + path, headers={"Authorization": f"Bearer {OTHER_KEY}"})
            assert ans.status == 200, path
    assert not up.requests  # nothing unauthenticated reached the upstream


async def test_keys_are_compared_in_constant_time_on_every_route(fakes, gate, monkeypatch):
    """Every protected route authenticates through hmac.compare_digest, once per configured key, whether the
    presented key is wrong, of another length, or right (no early exit, no `==`)."""
    import hmac

    up = await fakes()
    g = await gate(keyed_config(up.url, metrics_auth=True))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    n_keys = 3
    async with aiohttp.ClientSession() as s:
        for method, path in g.routes():
            if path in PUBLIC or method == "HEAD":
                continue
            data = body_for(path) if method == "POST" else None
            for presented in ("sk-wrong", "x", CLIENT_KEY[:-1] + "Z", "sk-third-key"):
                calls.clear()
                await request(s, method, g.url + path, data=data,
                              headers={"Authorization": f"Bearer {presented}", "Content-Type": "application/json"})
                assert len(calls) >= n_keys, (method, path, presented, len(calls))
                assert all(a == presented.encode() for a, _ in calls)
            calls.clear()
            await request(s, method, g.url + path, data=data, headers={"x-api-key": "sk-wrong"})
            assert len(calls) >= n_keys, (method, path, "x-api-key")


async def test_credentials_that_are_not_utf8_are_401_not_500(fakes, router):
    up = await fakes()
    r = await router(keyed_config(up.url))
    body = json.dumps(chat_body("m", "x")).encode()
    for header in (b"Authorization: Bearer \xff\xfe\xfd", b"x-api-key: \xc3\x28", b"Authorization: \xff"):
        raw = await raw_http(r.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
                             + header + b"\r\n\r\n" + body)
        status, _, payload = parse_raw_response(raw)
        assert status == 401, (header, raw[:300])
        assert "error" in json.loads(payload)
    assert not up.requests


class Capture(logging.Handler):
    """Every record, formatted the ways the router can log (JSON and text), plus its raw parts."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._formatters = (JsonFormatter(), TextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        for f in self._formatters:
            self.lines.append(f.format(record))
        self.lines.append(repr(record.__dict__))

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def captured_logs() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("agentgate", "agentgate.access", "aiohttp.server", "aiohttp.access",
                                                "aiohttp.client", "aiohttp.web")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    yield handler
    for lg, lvl in zip(loggers, levels, strict=True):
        lg.setLevel(lvl)
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_upstream_keys_never_reach_the_client_logs_or_metrics(fakes, gate, captured_logs):
    up = await fakes()
    g = await gate(keyed_config(up.url, extra_provider=", breaker: {failures: 1000}"))
    leak = f"Incorrect API key provided: {UPSTREAM_KEY}. Authorization: Bearer {UPSTREAM_KEY}"
    err = {"error": {"message": leak, "type": "invalid_request_error", "code": "invalid_api_key"}}
    scripted: list[tuple[str, bool, list[Step]]] = [
        ("m", False, [Step(json=completion("fine", "m"))]),
        ("m", True, [Step(sse=stream_of(["fi", "ne"], "m"))]),
        ("renamed", True, [Step(sse=stream_of(["fi", "ne"], "up-m"))]),
        ("m", False, [Step(status=401, json=err)]),
        ("m", True, [Step(status=401, json=err)]),
        ("m", False, [Step(status=403, json=err)]),
        ("m", False, [Step(status=500, json=err), Step(status=500, json=err)]),
        ("m", True, [Step(status=503, raw=leak.encode()), Step(status=503, raw=leak.encode())]),
        ("renamed", False, [Step(status=502, json=err), Step(status=502, json=err)]),
        ("m", False, [Step(status=429, json=err, headers={"Retry-After": "0"}),
                      Step(status=429, json=err, headers={"Retry-After": "0"})]),
        ("m", False, [Step(status=400, json=err)]),
        ("renamed", False, [Step(status=404, json=err)]),
        ("m", False, [Step(raw=leak.encode())]),  # a 200 that is not JSON
        ("m", True, [Step(sse=[chunk("m", {"content": "a"}), {"error": {"message": leak}}])]),
        ("renamed", True, [Step(sse=[chunk("up-m", {"content": "a"}), {"error": {"message": leak}}])]),
        ("m", True, [Step(sse=stream_of(["a", "b"], "m"), reset_after=2)]),
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    served = {path for _, path in g.routes()}
    dialects: list[tuple[str, dict[str, Any]]] = [("/v1/chat/completions", {})]
    if repair_ready():  # requests with tools take the parsed pipeline (repair), not the byte passthrough
        dialects.append(("/v1/chat/completions", {"tools": tools}))
    if "/v1/messages" in served:
        dialects.append(("/v1/messages", {"max_tokens": 10}))
    if "/v1/responses" in served:
        dialects.append(("/v1/responses", {"store": False}))
    seen: list[bytes] = []
    async with aiohttp.ClientSession() as s:
        for path, extra in dialects:
            for model, stream, steps in scripted:
                up.push(*steps)
                before = len(up.requests)
                body: dict[str, Any] = {"model": model, "stream": stream, **extra}
                if path == "/v1/responses":
                    body["input"] = "x"
                else:
                    body["messages"] = [{"role": "user", "content": "x"}]
                ans: Answer = await request(s, "POST", g.url + path, json_body=body,
                                            headers={"Authorization": f"Bearer {CLIENT_KEY}"})
                assert ans.status < 500 or ans.status in (502, 503, 504), (path, ans.status, ans.body[:200])
                assert len(up.requests) - before == len(steps), (path, model, stream, steps)
                assert not up.script, "every scripted answer was used"
                seen += [ans.body, json.dumps(ans.headers).encode()]
        for method, path in g.routes():
            if method == "GET":
                ans = await request(s, "GET", g.url + path, headers={"Authorization": f"Bearer {CLIENT_KEY}"})
                seen += [ans.body, json.dumps(ans.headers).encode()]
    assert all(q.headers.get("Authorization") == f"Bearer {UPSTREAM_KEY}" for q in up.requests)
    state = g.app[STATE]
    exposed = {
        "responses": b"\n".join(seen).decode("utf-8", "replace"),
        "metrics": state.metrics.render().decode(),
        "logs": captured_logs.text(),
        "ready": repr(state.runtime.config.providers),  # what a repr in a traceback would show
    }
    for where, text in exposed.items():
        for secret in (UPSTREAM_KEY, CLIENT_KEY, OTHER_KEY):
            assert secret not in text, f"{secret[:12]}... leaked into {where}: " + _around(text, secret)
    assert "request" in captured_logs.text()  # the access log was captured at all


def _around(text: str, secret: str) -> str:
    i = text.index(secret)
    return repr(text[max(0, i - 160): i + len(secret) + 40])


async def test_a_malformed_header_does_not_put_a_client_key_in_the_log(fakes, router, captured_logs):
    up = await fakes()
    r = await router(keyed_config(up.url))
    for bad in (b"Authorization: Bearer " + CLIENT_KEY.encode() + b"\rX: y",
                b"Authorization: Bearer " + CLIENT_KEY.encode() + b"a" * 20000):
        raw = await raw_http(r.url, b"GET /v1/models HTTP/1.1\r\nHost: t\r\n" + bad + b"\r\n\r\n")
        status, _, _ = parse_raw_response(raw)
        assert 400 <= status < 500
    assert CLIENT_KEY not in captured_logs.text(), _around(captured_logs.text(), CLIENT_KEY)


def test_default_bind_is_loopback():
    assert parse_config("").server.host == "127.0.0.1"
    assert parse_config("server: {port: 9000}").server.host == "127.0.0.1"
    import argparse

    from router.commands import serve

    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    assert p.parse_args([]).host is None  # no CLI default overrides the config's loopback
    if importlib.util.find_spec("engines.worker.cli") is not None:
        from engines.worker import cli

        p = argparse.ArgumentParser()
        cli.add_arguments(p)
        assert p.parse_args(["--model", "tiny:demo"]).host == "127.0.0.1"


async def test_body_limit_is_413_with_and_without_content_length(fakes, router):
    up = await fakes()
    r = await router(keyed_config(up.url).replace("server: {", "server: {max_body_mb: 0.01, "))
    big = json.dumps(chat_body("m", "x" * 20000)).encode()
    auth = {"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"}

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s:
        ans = await request(s, "POST", r.url + "/v1/chat/completions", data=big, headers=auth)
        assert ans.status == 413 and ans.json()["error"]["code"] == "request_too_large"
        async with s.post(r.url + "/v1/chat/completions", data=chunked(), headers=auth) as resp:
            assert resp.status == 413 and "Content-Length" not in resp.request_info.headers
            assert (await resp.json())["error"]["code"] == "request_too_large"
        # a lying Content-Length is refused before the body is read
        raw = await raw_http(r.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                             b"Authorization: Bearer " + CLIENT_KEY.encode() + b"\r\n"
                             b"Content-Length: 999999999999\r\n\r\n{}")
        assert parse_raw_response(raw)[0] == 413
    assert not up.requests


async def test_concurrency_limit_without_a_queue_is_429_with_retry_after(fakes, router):
    up = await fakes()
    r = await router(keyed_config(up.url, extra_provider=", max_concurrency: 1, max_queue: 0"))
    hold = asyncio.Event()
    up.push(Step(json=completion("held", "m"), gate=hold))
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with aiohttp.ClientSession() as s:
        first = asyncio.create_task(request(s, "POST", r.url + "/v1/chat/completions",
                                            json_body=chat_body("m", "1"), headers=auth))
        await up.wait_requests(1)
        second = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("m", "2"),
                               headers=auth)
        assert second.status == 429 and int(second.headers["retry-after"]) >= 1
        assert second.json()["error"]["code"] == "queue_full"
        hold.set()
        assert (await first).status == 200
        third = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("m", "3"),
                              headers=auth)
        assert third.status == 200  # the slot was given back
    limiter = r.state.runtime.upstreams["lab"].limiter
    assert limiter.active == 0 and limiter.queued == 0


@pytest.mark.skipif(importlib.util.find_spec("engines.worker.server") is None, reason="the engine worker is not built")
async def test_engine_socket_is_not_world_writable(tmp_path):
    sock = tmp_path / "engine.sock"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engines", "--model", "tiny:demo", "--socket", str(sock), cwd=str(REPO_ROOT),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_until(lambda: sock.exists() or proc.returncode is not None, timeout=60, interval=0.05)
        assert sock.exists(), f"the worker exited ({proc.returncode}) without creating its socket"
        mode = sock.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert not mode & (stat.S_IWOTH | stat.S_IROTH | stat.S_IWGRP | stat.S_IRGRP), oct(mode)
        assert stat.S_IMODE(mode) == 0o600
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def test_a_key_pasted_as_the_model_name_stays_out_of_the_log_and_the_console(fakes, router, captured_logs):
    """A client that puts a key where the model name goes (a mis-paste) is told the model is unknown; the access log
    and the console's recent requests, which any unrestricted key can read, show `[redacted]` in its place."""
    up = await fakes()
    r = await router(keyed_config(up.url))
    async with aiohttp.ClientSession() as s:
        for model in (OTHER_KEY, f"prefix-{OTHER_KEY}"):
            ans = await request(s, "POST", r.url + "/v1/chat/completions",
                                json_body={"model": model, "messages": [{"role": "user", "content": "x"}]},
                                headers={"Authorization": f"Bearer {CLIENT_KEY}"})
            assert ans.status == 404
        recent = await request(s, "GET", r.url + "/ui/api/requests", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert OTHER_KEY not in captured_logs.text(), _around(captured_logs.text(), OTHER_KEY)
    assert recent.status == 200 and OTHER_KEY.encode() not in recent.body
    assert "[redacted]" in captured_logs.text()


async def test_a_model_name_of_any_length_is_recorded_cut_short(fakes, router, captured_logs):
    """The record keeps 200 characters of the model asked for: a 2 MB name (any client can send one) is not written
    whole into the access log, nor held 500 times over by the console's recent requests; a key standing past the
    cut is found before it (no part of it is left)."""
    up = await fakes()
    r = await router(keyed_config(up.url))
    long_names = ("x" * 2_000_000, "y" * 190 + OTHER_KEY)
    async with aiohttp.ClientSession() as s:
        for path, extra in (("/v1/chat/completions", {}), ("/v1/messages", {"max_tokens": 5})):
            for model in long_names:
                ans = await request(s, "POST", r.url + path, headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                                    json_body={"model": model, "messages": [{"role": "user", "content": "x"}], **extra})
                assert ans.status == 404 and len(ans.body) < 2000
        recent = await request(s, "GET", r.url + "/ui/api/requests", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert recent.status == 200 and len(recent.body) < 20_000
    assert len(captured_logs.text()) < 50_000
    assert OTHER_KEY[:8] not in captured_logs.text() and OTHER_KEY[:8].encode() not in recent.body


async def test_a_wildcard_model_named_by_the_client_is_recorded_cut_short_and_redacted(fakes, router, captured_logs):
    """A wildcard entry sends the client's own text upstream as the model; the record's `upstream_model` holds it
    too, so it is shown as `model` is: a key in it redacted, a long one cut (it was written whole into every log
    line and kept 500 times over by the console's recent requests)."""
    up = await fakes()
    r = await router(keyed_config(up.url).replace("models:", "models:\n  - {name: 'lab/*', provider: lab}"))
    async with aiohttp.ClientSession() as s:
        for model in (f"lab/{OTHER_KEY}", "lab/" + "x" * 300_000):
            ans = await request(s, "POST", r.url + "/v1/chat/completions",
                                headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                                json_body={"model": model, "messages": [{"role": "user", "content": "x"}]})
            assert ans.status == 200
        recent = await request(s, "GET", r.url + "/ui/api/requests", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert [rec.body["model"] for rec in up.requests] == [OTHER_KEY, "x" * 300_000]  # (sent as asked)
    assert OTHER_KEY not in captured_logs.text(), _around(captured_logs.text(), OTHER_KEY)
    assert recent.status == 200 and OTHER_KEY.encode() not in recent.body and len(recent.body) < 20_000
    assert len(captured_logs.text()) < 50_000


async def test_without_keys_web_pages_are_refused_and_programs_served(fakes, router):
    """With no client key to check (the shipped loopback default), a request a web page sent is refused before
    anything runs: another site's form or image (Sec-Fetch-Site, Origin) would spend the providers' keys or stop
    engines, and a page re-pointing its own domain at 127.0.0.1 (DNS rebinding, its domain as Host) could read
    answers and stored conversations. SDKs, agent CLIs and curl send none of these and are served."""
    up = await fakes()
    r = await router(f"providers:\n  lab: {{type: openai, base_url: '{up.url}'}}\n"
                     "models:\n  - {name: m, provider: lab}\n")
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    refused = [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
               {"Origin": "https://evil.example"}, {"Host": "attacker.example:8080"},
               {"Origin": "http://203.0.113.5"}, {"Origin": "null"},  # a page served from an address; an opaque one
               {"Referer": "http://evil.example/page"}]  # an image on a browser without Fetch Metadata
    async with aiohttp.ClientSession() as s:
        for headers in refused:
            for method, path, body in (("POST", "/v1/chat/completions", chat), ("GET", "/unload", None),
                                       ("POST", "/admin/reload", None), ("GET", "/v1/models", None),
                                       ("GET", "/metrics", None)):
                ans = await request(s, method, r.url + path, json_body=body, headers=headers)
                assert ans.status == 403 and json.loads(ans.body)["error"]["code"] == "cross_site_refused", \
                    (headers, path, ans.status)
        assert up.requests == []
        for headers in ({}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://127.0.0.1:8080"},
                        {"Host": "localhost:8080"}, {"Referer": "http://127.0.0.1:8080/ui/"},
                        {"Origin": "http://192.168.1.5:8080", "Host": "192.168.1.5:8080"}):  # the page is its own
            ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat, headers=headers)
            assert ans.status == 200, (headers, ans.body[:200])
            assert (await request(s, "GET", r.url + "/metrics", headers=headers)).status == 200


async def test_with_keys_the_key_decides_not_the_page(fakes, router):
    up = await fakes()
    r = await router(keyed_config(up.url))
    async with aiohttp.ClientSession() as s:
        ans = await request(s, "POST", r.url + "/v1/chat/completions",
                            json_body={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                            headers={"Authorization": f"Bearer {CLIENT_KEY}", "Origin": "https://app.example",
                                     "Sec-Fetch-Site": "cross-site"})
    assert ans.status == 200
