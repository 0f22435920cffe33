"""What an attacker or a bad upstream could still do after the first security pass, one test per finding:
redirects, reflected upstream headers, provider keys in answers, validation of the fields the router reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletion

from router.app import Running, create_app, start
from router.config import ConfigError, load_config, parse_config
from router.logs import TextFormatter
from router.reload import RELOADER
from router.store import ResponseStore, RowTooLarge, StoredResponse
from tests.fakes.openai_upstream import Step, completion
from tests.reliability.support import chat_body, openai_error, request
from tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]

UPSTREAM_KEY = "sk-upstream-CANARY-9b1c55"
HEADER_SECRET = "hdr-secret-CANARY-4411"


def config(url: str, *, kind: str = "openai", retries: int = 2, extra: str = "") -> str:
    return f"""
providers:
  lab: {{type: {kind}, base_url: '{url}', api_key: {UPSTREAM_KEY}, retries: {retries},
        headers: {{x-custom-auth: {HEADER_SECRET}}}, backoff: {{base: 0.001, max: 0.002}}}}
models:
  - {{name: m, provider: lab}}
{extra}"""


def escaped(secret: str) -> str:
    """`secret` as a JSON string body would carry it with every character \\u-escaped."""
    return "".join(f"\\u{ord(c):04x}" for c in secret)


# --- 1. redirects -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_an_upstream_error_never_followed(fakes, router, kind, status):
    up, elsewhere = await fakes("provider"), await fakes("elsewhere")
    up.push(*[Step(status=status, json={"moved": True}, headers={"Location": elsewhere.url + "/chat/completions"})
              for _ in range(5)])
    base = up.url if kind == "openai" else up.url.removesuffix("/v1") + "/v1"
    r = await router(config(base, kind=kind))
    async with aiohttp.ClientSession() as s:
        for stream in (False, True):
            ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("m", "secret prompt",
                                                                                                 stream))
            assert ans.status == 502, ans.body
            err = openai_error(ans.json())
            assert err["code"] == "upstream_redirect"
            assert "location" not in ans.headers and elsewhere.url not in ans.body.decode()
    assert elsewhere.requests == []  # neither the key nor the prompt went to the other host
    assert len(up.requests) == 2  # a redirect is not retried: the same answer would come back


# --- 4. upstream headers are rebuilt, never copied ----------------------------------------------------------------

async def test_upstream_retry_after_and_content_type_never_reflect_a_key(fakes, router):
    up = await fakes()
    up.push(Step(status=429, headers={"Retry-After": UPSTREAM_KEY}),
            Step(status=429, headers={"Retry-After": f"3, {UPSTREAM_KEY}"}),
            Step(status=400, raw=b'{"error": {"message": "bad", "type": "invalid_request_error"}}',
                 headers={"Content-Type": f"application/json; x={UPSTREAM_KEY}"}),
            Step(status=400, raw=b"bad", headers={"Content-Type": f"text/{UPSTREAM_KEY}"}),
            Step(status=429, headers={"Retry-After": "2.2"}),
            Step(status=200, json=completion("ok", "m"), headers={"Content-Type": f"application/{UPSTREAM_KEY}",
                                                                 "x-leak": UPSTREAM_KEY}))
    r = await router(config(up.url, retries=0))
    seen: list[tuple[int, dict[str, str], bytes]] = []
    async with aiohttp.ClientSession() as s:
        for _ in range(6):
            ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("m", "x"))
            seen.append((ans.status, ans.headers, ans.body))
    for status, headers, body in seen:
        assert UPSTREAM_KEY not in json.dumps(headers) and UPSTREAM_KEY.encode() not in body, (status, headers)
    assert [s for s, _, _ in seen] == [429, 429, 400, 400, 429, 200]
    assert "retry-after" not in seen[0][1] and "retry-after" not in seen[1][1]
    assert seen[2][1]["content-type"] == "application/json"
    assert seen[3][1]["content-type"] == "text/plain"
    assert seen[4][1]["retry-after"] == "3"  # rebuilt as whole seconds


# --- 12. a provider key in a 200 body, literal or escaped, on every path ------------------------------------------

def _leaky(content: str) -> dict[str, Any]:
    return completion(content, "m")


@pytest.mark.parametrize("path", ["chat", "tools", "messages", "responses"])
async def test_a_provider_key_in_a_200_body_never_reaches_the_client(fakes, router, path):
    up = await fakes()
    for secret in (UPSTREAM_KEY, HEADER_SECRET):
        literal = json.dumps(_leaky(f"the key is {secret}")).encode()
        hidden = json.dumps(_leaky("the key is SECRET")).encode().replace(b"SECRET", escaped(secret).encode())
        up.push(Step(raw=literal), Step(raw=hidden))
    r = await router(config(up.url, retries=0))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    async with aiohttp.ClientSession() as s:
        for _ in range(4):
            if path == "messages":
                ans = await request(s, "POST", r.url + "/v1/messages", json_body={
                    "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
            elif path == "responses":
                ans = await request(s, "POST", r.url + "/v1/responses", json_body={"model": "m", "input": "x",
                                                                                   "store": False})
            else:
                body = chat_body("m", "x") | ({"tools": tools} if path == "tools" else {})
                ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=body)
            assert ans.status == 200, ans.body
            text = ans.body.decode()
            decoded = json.dumps(ans.json(), ensure_ascii=False)
            for secret in (UPSTREAM_KEY, HEADER_SECRET):
                assert secret not in text and secret not in decoded
            assert "[redacted]" in decoded


# --- 3. stored responses belong to the key, not to its position or name -----------------------------------------

def served_config(url: str, keys: str, server: str = "") -> str:
    return f"""
server: {{api_keys: [{keys}]{server}}}
providers:
  lab: {{type: openai, base_url: '{url}', api_key: {UPSTREAM_KEY}, retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


async def serve_file(tmp_path: Path, text: str) -> tuple[Any, Running]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    app = create_app(load_config(path), config_path=str(path))
    return app, await start(app)


async def test_stored_responses_follow_the_key_not_its_position(fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGATE_STATE_DIR", str(tmp_path / "state"))
    up = await fakes()
    app, running = await serve_file(tmp_path, served_config(up.url, "sk-first-key-0001, sk-second-key-0002"))
    try:
        async with aiohttp.ClientSession() as s:
            first = {"Authorization": "Bearer sk-first-key-0001"}
            made = await request(s, "POST", running.url + "/v1/responses", headers=first,
                                 json_body={"model": "m", "input": "the first key's secret plan"})
            assert made.status == 200, made.body
            resp_id = made.json()["id"]
            (tmp_path / "config.yaml").write_text(served_config(up.url, "sk-second-key-0002, sk-third-key-0003"))
            result = await app[RELOADER].reload("http")
            assert result.ok, result.error
            for key in ("sk-second-key-0002", "sk-third-key-0003"):  # now key0 and key1: neither may read it
                other = {"Authorization": f"Bearer {key}"}
                got = await request(s, "GET", running.url + f"/v1/responses/{resp_id}", headers=other)
                assert got.status == 404, got.body
                cont = await request(s, "POST", running.url + "/v1/responses", headers=other,
                                     json_body={"model": "m", "input": "x", "previous_response_id": resp_id})
                assert cont.status == 400 and b"secret plan" not in cont.body
            (tmp_path / "config.yaml").write_text(served_config(up.url, "{key: sk-first-key-0001, name: renamed}"))
            assert (await app[RELOADER].reload("http")).ok
            got = await request(s, "GET", running.url + f"/v1/responses/{resp_id}", headers=first)
            assert got.status == 200  # the same key under another name still owns it
        db = (tmp_path / "state" / "responses.sqlite3").read_bytes()
        assert b"sk-first-key-0001" not in db
    finally:
        await running.stop()


@pytest.mark.parametrize("keys", [
    "{key: sk-a-000000001, name: team}, {key: sk-b-000000002, name: team}",
    "{key: sk-a-000000001, name: one}, {key: sk-a-000000001, name: two}",
])
def test_duplicate_key_names_and_keys_are_refused(keys):
    with pytest.raises(ConfigError, match=r"server\.api_keys\[1\]"):
        parse_config(served_config("http://127.0.0.1:1/v1", keys), env={})


# --- 6. authentication fails closed -------------------------------------------------------------------------------

async def test_a_reload_that_would_drop_every_key_is_rejected(fakes, tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTGATE_TEST_UNSET_A", raising=False)
    monkeypatch.delenv("AGENTGATE_TEST_UNSET_B", raising=False)
    up = await fakes()
    app, running = await serve_file(tmp_path, served_config(up.url, "sk-only-key-0001"))
    try:
        (tmp_path / "config.yaml").write_text(served_config(up.url, "'${AGENTGATE_TEST_UNSET_A}', "
                                                                    "'${AGENTGATE_TEST_UNSET_B}'"))
        result = await app[RELOADER].reload("http")
        assert not result.ok and result.status == 400 and "authentication off" in (result.error or "")
        async with aiohttp.ClientSession() as s:
            ans = await request(s, "POST", running.url + "/v1/chat/completions", json_body=chat_body("m", "x"))
            assert ans.status == 401  # still locked
        (tmp_path / "config.yaml").write_text(served_config(up.url, "", ", allow_unauthenticated: true"))
        assert (await app[RELOADER].reload("http")).ok  # said explicitly: allowed
    finally:
        await running.stop()


def _cli(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "open.yaml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTGATE_")} | {"HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "router", args[0], "--config", str(path), *args[1:]],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT)


def test_no_keys_beyond_loopback_refuses_to_start(tmp_path):
    text = served_config("http://127.0.0.1:1/v1", "'${AGENTGATE_TEST_UNSET_A}'")
    done = _cli(tmp_path, text, "serve", "--port", "0", "--host", "0.0.0.0")
    assert done.returncode == 2, done.stderr
    assert "refusing to start" in done.stderr and "allow_unauthenticated" in done.stderr
    checked = _cli(tmp_path, text.replace("server: {", "server: {host: 0.0.0.0, "), "check")
    assert checked.returncode == 2 and "would refuse to start" in checked.stderr, checked.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_key_but_other_addresses_do(host):
    from router.config.auth import open_relay_refusal
    from router.config.model import ServerConfig

    assert open_relay_refusal(ServerConfig(host=host)) is None
    for other in ("0.0.0.0", "", "10.0.0.5", "::", "example.com"):
        assert open_relay_refusal(ServerConfig(host=other)) is not None
        assert open_relay_refusal(ServerConfig(host=other, allow_unauthenticated=True)) is None


# --- 8/9. the response store: bounded rows, runtime failures degrade ----------------------------------------------

async def test_store_rows_are_bounded(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite3", max_row_bytes=10_000)
    try:
        with pytest.raises(RowTooLarge):
            await store.put(StoredResponse("resp_big", None, {"id": "resp_big"}, [{"content": "x" * 20_000}]))
        await store.put(StoredResponse("resp_small", None, {"id": "resp_small"}, [{"content": "x"}]))
        assert store.count() == 1
    finally:
        store.close()


async def test_store_conversations_are_bounded_in_objects(tmp_path):
    """A stored conversation of 450k one-character messages (14.6 MiB, under the row bound) cost ~160 MiB each time
    a tiny previous_response_id request loaded it: past `max_containers` objects and arrays it is not stored, and
    one stored before the bound is refused when loaded (not parsed)."""
    from router.store import ConversationTooLarge

    store = ResponseStore(tmp_path / "r.sqlite3", max_containers=1000)
    many = [{"role": "user", "content": "x"}] * 2000
    try:
        with pytest.raises(RowTooLarge, match="AGENTGATE_RESPONSES_MAX_CONTAINERS"):
            await store.put(StoredResponse("resp_many", None, {"id": "resp_many"}, many))
        assert store.count() == 0
        store.max_containers = 5000  # stored while the bound was higher
        await store.put(StoredResponse("resp_many", None, {"id": "resp_many"}, many))
        await store.put(StoredResponse("resp_few", None, {"id": "resp_few"}, many[:10]))
        store.max_containers = 1000
        with pytest.raises(ConversationTooLarge, match="1000"):
            await store.get("resp_many", None)
        few = await store.get("resp_few", None)
        assert few is not None and len(few.messages) == 10
    finally:
        store.close()


async def test_previous_response_id_naming_a_too_large_conversation_is_400(fakes, router, tmp_path, monkeypatch):
    from router.api.responses import RESPONSE_STORE

    monkeypatch.setenv("AGENTGATE_STATE_DIR", str(tmp_path / "state"))
    up = await fakes()
    r = await router(config(up.url, retries=0))
    async with aiohttp.ClientSession() as s:
        big = await request(s, "POST", r.url + "/v1/responses", json_body={
            "model": "m", "input": [{"role": "user", "content": "y"}] * 60})
        small = await request(s, "POST", r.url + "/v1/responses", json_body={"model": "m", "input": "x"})
        assert big.status == 200 and small.status == 200
        (await r.app[RESPONSE_STORE].get()).max_containers = 50  # the first was stored under a higher bound
        for path, body in (("/v1/responses", {"model": "m", "input": "z", "previous_response_id": big.json()["id"]}),
                           ("/v1/responses/input_tokens", {"model": "m", "input": "z",
                                                           "previous_response_id": big.json()["id"]})):
            again = await request(s, "POST", r.url + path, json_body=body)
            assert again.status == 400, (path, again.status, again.body[:200])
            err = again.json()["error"]
            assert err["code"] == "previous_response_too_large" and "50" in err["message"], err
        for tail in ("", "/input_items"):  # (a GET has no previous_response_id to name)
            got = await request(s, "GET", r.url + "/v1/responses/" + big.json()["id"] + tail)
            assert got.status == 400 and got.json()["error"]["code"] == "previous_response_too_large"
            assert got.json()["error"]["param"] is None, tail
        ok = await request(s, "POST", r.url + "/v1/responses", json_body={
            "model": "m", "input": "z", "previous_response_id": small.json()["id"]})
        assert ok.status == 200


async def test_a_store_replaced_underneath_degrades_never_500(fakes, router, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AGENTGATE_STATE_DIR", str(tmp_path / "state"))
    up = await fakes()
    r = await router(config(up.url, retries=0))
    async with aiohttp.ClientSession() as s:
        made = await request(s, "POST", r.url + "/v1/responses", json_body={"model": "m", "input": "x"})
        assert made.status == 200
        db = tmp_path / "state" / "responses.sqlite3"
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(db) + suffix)
        replacement = tmp_path / "garbage"
        replacement.write_bytes(b"not a database at all" * 100)
        os.replace(replacement, db)
        with caplog.at_level(logging.WARNING, logger="agentgate"):
            for _ in range(3):
                again = await request(s, "POST", r.url + "/v1/responses", json_body={"model": "m", "input": "y"})
                assert again.status == 200, again.body
                cont = await request(s, "POST", r.url + "/v1/responses", json_body={
                    "model": "m", "input": "z", "previous_response_id": again.json()["id"]})
                assert cont.status < 500, cont.body
                for path in ("", "/input_items"):
                    got = await request(s, "GET", r.url + f"/v1/responses/{made.json()['id']}{path}")
                    assert got.status < 500, got.body
    assert not [rec for rec in caplog.records if rec.exc_info]  # a cause, not a traceback


class _LockedCounter:
    """The store's database connection, counting the statements that found the database locked (each waited out
    the busy timeout first)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.locked = 0

    def _counted(self, run: Any, *args: Any) -> Any:
        try:
            return run(*args)
        except sqlite3.OperationalError as exc:
            self.locked += "locked" in str(exc)
            raise

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self._counted(self.db.execute, *args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        return self._counted(self.db.executemany, *args)

    def close(self) -> None:
        self.db.close()


async def test_a_store_locked_elsewhere_is_no_convoy(tmp_path):
    """Six writes while another process holds the write lock: the first waits out the busy timeout and the store
    goes on in memory; the five queued behind it never wait on the lock (they were 6 x 5 s one after the other)."""
    path = tmp_path / "r.sqlite3"
    store = ResponseStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        store._db = counter = _LockedCounter(store._db)
        puts = [store.put(StoredResponse(f"resp_{n}", None, {"id": n}, [])) for n in range(6)]
        await asyncio.wait_for(asyncio.gather(*puts), 60)  # (the bound only turns a hang into a failure)
        assert counter.locked == 1  # one statement waited on the lock held elsewhere, not one per write
        assert all([await store.get(f"resp_{n}", None) is not None for n in range(6)])
        assert counter.locked == 1 and store.path == ":memory:"
    finally:
        holder.close()
        store.close()


# --- 12. a huge previous_response_id is not echoed ----------------------------------------------------------------

async def test_a_huge_previous_response_id_is_refused_not_echoed(fakes, router, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGATE_STATE_DIR", str(tmp_path / "state"))
    up = await fakes()
    r = await router(config(up.url))
    huge = "resp_" + "x" * 500_000
    async with aiohttp.ClientSession() as s:
        ans = await request(s, "POST", r.url + "/v1/responses", json_body={"model": "m", "input": "x",
                                                                           "previous_response_id": huge})
        assert ans.status == 400 and len(ans.body) < 2000, len(ans.body)
        assert openai_error(ans.json())["param"] == "previous_response_id"
        for path in ("", "/input_items"):
            got = await request(s, "GET", r.url + "/v1/responses/" + "resp_" + "y" * 4000 + path)
            assert got.status == 404 and len(got.body) < 2000
    assert up.requests == []


# --- 7. an engine crash is the supervisor's to handle, not the breaker's ------------------------------------------

async def _worker_holds(stats_url: str, count: int, timeout: float = 60.0) -> None:
    """Until the worker's own /stats (through the router's /upstream) counts `count` requests queued or running."""
    async def poll(s: aiohttp.ClientSession) -> None:
        while True:
            got = await request(s, "GET", stats_url)
            doc = got.json() if got.status == 200 else {}
            if int(doc.get("queue", 0)) + int(doc.get("running", 0)) >= count:
                return
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as s:
        await asyncio.wait_for(poll(s), timeout)


async def test_an_engine_crash_under_load_does_not_open_the_breaker(router, tmp_path):
    r = await router(f"engines:\n  runtime_dir: '{tmp_path}'\n"
                     "models:\n  - {name: rnd, engine: mlx, model: 'tiny:random:3'}\n")
    client, sup = r.client(), r.state.supervisor
    hi = [{"role": "user", "content": "hi"}]
    await client.chat.completions.create(model="rnd", messages=hi, max_tokens=2)
    pid = sup.states()["rnd"].pid
    # the end-of-turn token (id 2 in the tiny tokenizer) banned: no request may finish before the kill lands
    loops = [asyncio.create_task(client.chat.completions.create(model="rnd", messages=hi, max_tokens=3500,
                                                                temperature=1.0, logit_bias={"2": -100}))
             for _ in range(6)]
    await wait_until(lambda: sup.states()["rnd"].in_flight == 6, timeout=60)
    # killed once the worker itself holds all six: a request whose lease came before the kill but whose bytes never
    # reached the worker is sent again, to the restarted engine, and answered (after 3500 tokens)
    await _worker_holds(r.url + "/upstream/rnd/stats", 6)
    os.kill(pid, signal.SIGKILL)
    failed = await asyncio.gather(*loops, return_exceptions=True)
    crashed = [f for f in failed if isinstance(f, openai.APIStatusError)]
    assert crashed and all(f.status_code == 502 and "crashed" in f.message for f in crashed), failed
    assert all(isinstance(f, (openai.APIStatusError, ChatCompletion)) for f in failed), failed
    upstream = r.state.runtime.upstreams["engine:rnd"]
    await wait_until(lambda: sup.crashed("rnd") or sup.states()["rnd"].pid != pid, timeout=30)  # exit noticed
    again = await client.chat.completions.create(model="rnd", messages=hi, max_tokens=2)  # restarted, not 503
    assert again.choices and sup.states()["rnd"].pid != pid
    await asyncio.sleep(1.5)  # past the grace in which a failure waits for the supervisor's verdict
    assert upstream.breaker.state == "closed" and upstream.breaker.consecutive == 0


# --- 12. the allowlist holds on every hop, and suggestions stay inside it -----------------------------------------

def allowlist_config(a: str, b: str) -> str:
    return f"""
server: {{api_keys: [{{key: sk-limited-key-01, name: ci, models: [cheap, chain, cheap-fast]}}]}}
providers:
  pa: {{type: openai, base_url: '{a}', retries: 0}}
  pb: {{type: openai, base_url: '{b}', retries: 0}}
models:
  - {{name: cheap, provider: pa}}
  - {{name: premium, provider: pb}}
  - {{name: premium-max, provider: pb}}
  - {{name: chain, provider: pa, fallbacks: [premium]}}
  - {{name: pure, fallbacks: [premium]}}
"""


async def test_a_restricted_key_never_reaches_a_forbidden_model_through_fallbacks(fakes, router):
    a, b = await fakes("a"), await fakes("b")
    a.push(Step(status=500), Step(status=500))
    r = await router(allowlist_config(a.url, b.url))
    auth = {"Authorization": "Bearer sk-limited-key-01"}
    async with aiohttp.ClientSession() as s:
        ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("chain", "x"),
                            headers=auth)
        assert ans.status == 502, ans.body  # its own hop failed; the forbidden fallback was never tried
        assert b.requests == [] and len(a.requests) == 1
        ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("premium-maxx", "x"),
                            headers=auth)
        assert ans.status == 404 and "Did you mean" not in openai_error(ans.json())["message"]
        ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("cheap-fastt", "x"),
                            headers=auth)
        assert ans.status == 404 and "Did you mean: cheap?" in openai_error(ans.json())["message"]
        ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body("premium", "x"),
                            headers=auth)
        assert ans.status == 403
    assert b.requests == []


# --- 13. every field the router reads is checked before any upstream is called ------------------------------------

@pytest.mark.parametrize(("path", "patch", "param"), [
    ("/v1/chat/completions", {"stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"messages": None}, "messages"),
    ("/v1/chat/completions", {"messages": ["hi"]}, "messages[0]"),
    ("/v1/chat/completions", {"messages": [{"content": "hi"}]}, "messages[0].role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("/v1/chat/completions", {"tools": {"type": "function"}}, "tools"),
    ("/v1/chat/completions", {"tools": ["f"]}, "tools[0]"),
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": "f"}]}, "tools[0].function"),
    ("/v1/chat/completions", {"tool_choice": 3}, "tool_choice"),
    ("/v1/chat/completions", {"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ("/v1/chat/completions", {"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ("/v1/chat/completions", {"stream_options": []}, "stream_options"),
    ("/v1/completions", {"stream": 1}, "stream"),
])
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_fields_the_router_reads_are_400_naming_them(fakes, router, path, patch, param, kind):
    up = await fakes()
    r = await router(config(up.url, kind=kind))
    body: dict[str, Any] = {"model": "m", "prompt": "x"} if path == "/v1/completions" else chat_body("m", "x")
    body.update(patch)
    body = {k: v for k, v in body.items() if v is not None}
    async with aiohttp.ClientSession() as s:
        ans = await request(s, "POST", r.url + path, json_body=body)
    assert ans.status == 400, ans.body
    assert openai_error(ans.json())["param"] == param
    assert up.requests == []


# --- 12. no forged log lines in the text format -------------------------------------------------------------------

class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(TextFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_a_model_name_cannot_forge_a_text_log_line(fakes, router):
    up = await fakes()
    r = await router(config(up.url))
    handler = _Lines()
    access = logging.getLogger("agentgate.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    # (a right-to-left override would show the rest of the line reversed: "status=200" read as a different record)
    forged = "m\n12:00:00 ERROR   agentgate: admin key rotated status=200\r\u2028x\u202egnp.exe\u2066"
    try:
        async with aiohttp.ClientSession() as s:
            ans = await request(s, "POST", r.url + "/v1/chat/completions", json_body=chat_body(forged, "x"))
            assert ans.status == 404
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    assert handler.lines
    for line in handler.lines:
        assert not any(c in line for c in "\n\r\u2028\u202e\u2066")
        assert "admin key rotated" in line  # still there, escaped inside the one line


# --- 12. idle and half-open client connections are closed ---------------------------------------------------------

async def test_idle_and_stalled_client_connections_are_timed_out(fakes, router):
    up = await fakes()
    r = await router(config(up.url).replace("providers:", "server: {idle_timeout: 0.5}\nproviders:", 1))
    host, port = r.url.removeprefix("http://").split(":")
    # a connection that never sends a request
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the router
    finally:
        writer.close()
    # a request whose body stops half way
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\": \"m\", ")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 408"), head
    finally:
        writer.close()
    assert up.requests == []


# --- 10. a dead warden is noticed, logged and replaced ------------------------------------------------------------

async def test_a_killed_warden_is_respawned_and_told_the_groups_again(caplog):
    from engines.supervisor.warden import Warden

    group = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)",
                                                 start_new_session=True)
    warden = Warden(grace=0.5)
    try:
        await warden.start()
        first = warden.pid
        assert first is not None
        warden.watch(group.pid)
        with caplog.at_level(logging.WARNING, logger="agentgate.engine"):
            os.kill(first, signal.SIGKILL)
            await wait_until(lambda: warden.pid not in (None, first), timeout=20)
        assert any("warden" in r.getMessage() and "new one" in r.getMessage() for r in caplog.records)
        second = warden.pid
        assert second is not None and warden.respawns == 1
        proc = warden._proc  # the router "dies": the new warden's pipe ends, and it stops the group it was told
        assert proc is not None and proc.stdin is not None
        await asyncio.sleep(0.3)  # let the replayed orders reach it
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 20)
        assert await asyncio.wait_for(group.wait(), 10) == -signal.SIGTERM
    finally:
        await warden.close()
        if group.returncode is None:
            group.kill()
            await group.wait()


# --- 11. engines and the warden never import from the router's working directory ---------------------------------

async def test_a_module_in_the_working_directory_never_runs_in_an_engine(router, tmp_path, monkeypatch):
    planted = tmp_path / "cwd"
    planted.mkdir()
    marker = tmp_path / "ran"
    for name in ("queue", "selectors", "json", "argparse"):
        (planted / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name} ')\nraise SystemExit(9)\n")
    monkeypatch.chdir(planted)
    r = await router(f"engines:\n  runtime_dir: '{tmp_path / 'rt'}'\n"
                     "models:\n  - {name: demo, engine: mlx, model: 'tiny:demo'}\n")
    reply = await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                                     max_tokens=2)
    assert reply.choices
    assert r.state.supervisor._warden.pid is not None  # the warden runs too
    assert not marker.exists(), marker.read_text()


def test_an_engine_start_failure_is_one_line_without_paths():
    from engines.supervisor.process import one_line_cause

    tail = ["Traceback (most recent call last):", '  File "/opt/app/engines/cli.py", line 120, in main',
            "    model = load(path)", "FileNotFoundError: [Errno 2] No such file: '/home/me/models/q/config.json'"]
    cause = one_line_cause(tail)
    assert cause == "FileNotFoundError: [Errno 2] No such file: 'config.json'"
    assert one_line_cause(["agentgate engine: failed to load /srv/m: bad", "exiting"]) == \
        "agentgate engine: failed to load m: bad"


async def test_a_full_disk_logs_its_cause_and_the_store_carries_on(tmp_path, caplog):
    store = ResponseStore(tmp_path / "r.sqlite3")
    try:
        store._db.execute("PRAGMA max_page_count = 8")  # a database that cannot grow: SQLITE_FULL, as a full disk
        with caplog.at_level(logging.WARNING, logger="agentgate"):
            await store.put(StoredResponse("resp_big", None, {"id": "resp_big"}, [{"content": "x" * 200_000}]))
        assert await store.get("resp_big", None) is not None  # kept, in memory
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "full" in text and "rollback" not in text.lower(), text
    finally:
        store.close()
