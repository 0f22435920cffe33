"""The console's JSON and the capture ring behind the repair inspector, through a real router and a scripted
upstream; captured output replayed with `agentgate repair --replay`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console.test_swap import call
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.waiting import in_own_thread, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_KEY = "sk-provider-secret-abcdefghijklmnop"
KEY, LIMITED = "sk-console-admin-0123456789", "sk-console-limited-0123456789"
TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
    "required": ["path"]}}}]
ASK = [{"role": "user", "content": "read a.py"}]
BROKEN = "Reading it. <tool_call>{'name': 'read_file', 'arguments': {'path': 'a.py', 'limit': '5',}}"
UNKNOWN = f'<tool_call>{{"name": "launch_rockets", "arguments": {{"token": "{PROVIDER_KEY}"}}}}</tool_call>'


def config(url: str, extra: str = "", capture: str = "true") -> str:
    return f"""
server:
  capture: {capture}
{extra}
providers:
  cloud: {{type: openai, base_url: "{url}", api_key: "{PROVIDER_KEY}"}}
models:
  - {{name: m, provider: cloud, aliases: [m-alias]}}
  - {{name: chain, fallbacks: [m]}}
"""


@pytest.fixture
def info_logs() -> Any:
    logger = logging.getLogger("agentgate")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


async def test_inspector_shows_raw_beside_repaired_and_redacts(fakes, router, info_logs) -> None:
    up = await fakes("cloud")
    r = await router(config(up.url))
    up.push(Step(json=completion(BROKEN, "m")), Step(json=completion(UNKNOWN, "m")),
            Step(sse=[chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": BROKEN[:30]}),
                      chunk("m", {"content": BROKEN[30:]}), chunk("m", {}, "stop")]),
            Step(json=completion("plain answer", "m")))
    client = r.client()
    await client.chat.completions.create(model="m", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    await client.chat.completions.create(model="m-alias", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="m", messages=ASK, tools=TOOLS, stream=True)  # type: ignore
    async for _ in stream:
        pass
    await client.chat.completions.create(model="m", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]

    status, doc = await call("GET", r.url + "/ui/api/captures")
    assert status == 200 and doc["enabled"] is True
    summaries = doc["captures"]
    assert [(c["id"], c["model"], c["outcome"]) for c in summaries] == [
        (1, "m", "repaired"), (2, "m-alias", "failed"), (3, "m", "repaired")]  # the valid answer is not kept
    assert {"coerced_type", "single_quotes", "trailing_comma", "truncated"} <= set(summaries[0]["repairs"])

    status, first = await call("GET", r.url + "/ui/api/captures/1")
    assert first["text"] == BROKEN and first["tools"] == TOOLS and first["provider"] == "cloud"
    call0 = first["repaired"]["tool_calls"][0]["function"]
    assert call0["name"] == "read_file" and json.loads(call0["arguments"]) == {"path": "a.py", "limit": 5}
    status, failed = await call("GET", r.url + "/ui/api/captures/2")
    assert failed["failures"] == ["unknown_name"] and PROVIDER_KEY not in json.dumps(failed)
    assert "[redacted]" in failed["text"]
    status, streamed = await call("GET", r.url + "/ui/api/captures/3")
    assert streamed["stream"] is True and streamed["text"] == BROKEN
    assert (await call("GET", r.url + "/ui/api/captures/99"))[0] == 404

    status, doc = await call("GET", r.url + "/ui/api/requests?after=0")
    rows = doc["requests"]
    assert [row["status"] for row in rows] == [200] * 4 and doc["last"] == 4
    assert set(summaries[0]["repairs"]) <= set(rows[0]["repairs"]) and rows[1]["tool_call_failures"] == ["unknown_name"]
    assert (await call("GET", r.url + "/ui/api/requests?after=3"))[1]["requests"][0]["seq"] == 4
    status, doc = await call("GET", r.url + "/ui/api/log?after=0")
    assert any(line["logger"] == "agentgate.access" and line["fields"]["model"] == "m-alias" for line in doc["lines"])
    assert PROVIDER_KEY not in json.dumps(doc)


async def test_state_lists_what_an_operator_needs(fakes, router) -> None:
    up = await fakes("cloud")
    r = await router(f"""
providers:
  cloud: {{type: openai, base_url: "{up.url}", api_key: "{PROVIDER_KEY}"}}
  offline: {{type: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${{NOPE}}"}}
models:
  - {{name: m, provider: cloud, aliases: [m-alias]}}
  - {{name: gone, provider: offline}}
  - {{name: demo, engine: mlx, model: "tiny:demo", ttl: 60}}
""")
    status, doc = await call("GET", r.url + "/ui/api/state")
    assert status == 200 and doc["capture"] == {"enabled": False, "count": 0}
    models = {m["id"]: m for m in doc["models"]}
    assert models["m-alias"]["alias_of"] == "m" and models["m"]["available"] is True
    assert models["gone"]["available"] is False and "NOPE" in models["gone"]["reason"]
    assert models["demo"]["engine"] == "stopped"
    providers = {p["name"]: p for p in doc["providers"]}
    assert providers["cloud"]["breaker"] == "closed" and providers["cloud"]["error_rate"] is None
    assert "NOPE" in providers["offline"]["disabled"]
    [engine] = doc["engines"]
    assert engine["name"] == "demo" and engine["state"] == "stopped" and engine["ttl"] == 60
    assert engine["ttl_left"] is None and engine["model"] == "tiny:demo"
    assert PROVIDER_KEY not in json.dumps(doc)


async def test_a_stream_that_failed_after_its_200_counts_in_its_providers_error_rate(fakes, router) -> None:
    """A stream the upstream cut goes out as a 200 ending in an error event; the provider's error rate counted only
    statuses of 500 and up, so a provider whose every stream broke showed 0 % (as /metrics counts it: a 502)."""
    import openai

    from tests.fakes.openai_upstream import stream_of

    up = await fakes("cloud")
    r = await router(config(up.url, capture="false"))
    up.push(Step(sse=stream_of(["hello there, ", "this is ", "a long answer"], "m"), reset_after=2),
            Step(json=completion("fine", "m")))
    with pytest.raises(openai.APIError):
        async for _ in await r.client().chat.completions.create(model="m", messages=ASK, stream=True):
            pass
    await r.client().chat.completions.create(model="m", messages=ASK)
    status, doc = await call("GET", r.url + "/ui/api/state")
    [cloud] = [p for p in doc["providers"] if p["name"] == "cloud"]
    assert status == 200 and (cloud["recent_requests"], cloud["recent_errors"], cloud["error_rate"]) == (2, 1, 0.5)
    status, doc = await call("GET", r.url + "/ui/api/requests")
    cut, fine = doc["requests"]
    assert status == 200 and (cut["status"], cut["ended_with"], cut["error"]) == (200, 502, "upstream_reset_mid_stream")
    assert fine["status"] == 200 and "ended_with" not in fine


async def test_console_needs_an_unrestricted_key(fakes, router) -> None:
    up = await fakes("cloud")
    r = await router(config(up.url, extra=f"  api_keys: [{{key: {KEY}, name: admin}}, "
                                          f"{{key: {LIMITED}, name: ci, models: [m]}}]"))
    async with aiohttp.ClientSession() as s:
        async with s.get(r.url + "/ui/") as resp:  # a browser asks the person for the key
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith('Basic realm="agentgate')
        basic = aiohttp.BasicAuth("anyone", KEY)
        async with s.get(r.url + "/ui", auth=basic) as resp:
            page = await resp.text()
            assert resp.status == 200 and str(resp.url).endswith("/ui/") and "<title>agentgate console</title>" in page
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        async with s.get(r.url + "/ui/", auth=aiohttp.BasicAuth("anyone", LIMITED)) as resp:
            assert resp.status == 403
        async with s.get(r.url + "/ui/api/state", auth=aiohttp.BasicAuth("anyone", "wrong")) as resp:
            assert resp.status == 401
    for path in ("/ui/static/console.js", "/ui/static/console.css"):
        assert (await call("GET", r.url + path))[0] == 401
        assert (await call("GET", r.url + path, KEY))[0] == 200
    assert (await call("GET", r.url + "/ui/static/../app.py", KEY))[0] == 404
    for path in ("/ui/api/state", "/ui/api/requests", "/ui/api/log", "/ui/api/captures", "/ui/api/probe"):
        assert (await call("GET", r.url + path))[0] == 401, path
        assert (await call("GET", r.url + path, LIMITED))[0] == 403, path
        assert (await call("GET", r.url + path, KEY))[0] == 200, path
    await r.client(LIMITED).chat.completions.create(model="m", messages=ASK)
    status, doc = await call("GET", r.url + "/ui/api/state", KEY)
    assert status == 200 and doc["keys"] == [{"name": "ci", "requests": 1, "prompt_tokens": 5, "completion_tokens": 3}]


async def test_probe_from_the_console(fakes, router) -> None:
    up = await fakes("cloud")
    r = await router(config(up.url))
    # The fake echoes: every turn is answered with text, so each is reported invalid (no_call).
    status, doc = await call("POST", r.url + "/ui/api/probe", json={"model": "m", "turns": 3})
    assert status == 202 and doc["state"] == "running"
    assert (await call("POST", r.url + "/ui/api/probe", json={"model": "m", "turns": 3}))[0] == 409
    await wait_until(lambda: r.app[_console_key()].probe.job.state != "running", timeout=60)
    status, doc = await call("GET", r.url + "/ui/api/probe")
    assert doc["state"] == "done" and [t["turn"] for t in doc["turns"]] == [1, 2, 3]
    assert {t["status"] for t in doc["turns"]} == {"invalid"} and doc["summary"]["validity_rate"] == 0
    status, err = await call("POST", r.url + "/ui/api/probe", json={"model": "nope", "turns": 3})
    assert status == 404
    status, err = await call("POST", r.url + "/ui/api/probe", json={"model": "m", "turns": 400})
    assert status == 400 and err["error"]["param"] == "turns"
    status, err = await call("POST", r.url + "/ui/api/probe", json={"model": "m", "tool_choice": "none"})
    assert status == 400 and err["error"]["param"] == "tool_choice"
    status, doc = await call("POST", r.url + "/ui/api/probe",
                             json={"model": "m", "turns": 1, "tool_choice": "required"})
    assert status == 202 and doc["tool_choice"] == "required"
    await wait_until(lambda: r.app[_console_key()].probe.job.state != "running", timeout=60)
    assert up.requests[-1].body["tool_choice"] == "required"


async def test_a_probe_from_a_console_opened_without_a_key_asks_for_one(fakes, router) -> None:
    """`admin_auth: false` opens the console without a key, but the probe calls /v1, which still needs one: the
    probe asks for it (the browser's Basic prompt) instead of running every turn into a 401."""
    up = await fakes("cloud")
    r = await router(config(up.url, f"  admin_auth: false\n  api_keys: [{KEY}]"))
    status, err = await call("POST", r.url + "/ui/api/probe", json={"model": "m", "turns": 1})
    assert status == 401 and err["error"]["code"] == "invalid_api_key" and up.requests == []
    status, doc = await call("POST", r.url + "/ui/api/probe", KEY, json={"model": "m", "turns": 1})
    assert status == 202
    await wait_until(lambda: r.app[_console_key()].probe.job.state != "running", timeout=60)
    status, doc = await call("GET", r.url + "/ui/api/probe")
    assert doc["state"] == "done" and len(up.requests) == 1


def _console_key() -> Any:
    from router.console import CONSOLE

    return CONSOLE


async def test_capture_file_and_replay(fakes, router, tmp_path: Path) -> None:
    up = await fakes("cloud")
    path = tmp_path / "state" / "capture.jsonl"
    r = await router(config(up.url, capture=f"{{max_entries: 5, file: '{path}'}}"))
    up.push(Step(json=completion(BROKEN, "m")), Step(json=completion(UNKNOWN, "m")))
    for _ in range(2):
        await r.client().chat.completions.create(model="m", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and PROVIDER_KEY not in path.read_text()
    async with aiohttp.ClientSession() as s, s.get(r.url + "/ui/api/captures.jsonl") as resp:
        assert (await resp.text()).splitlines() == lines

    proc = await replay(str(path))
    assert proc.returncode == 1, proc.stderr  # the unknown tool still fails
    assert "2 capture(s): 0 fixed, 1 still failing, 0 newly failing, 1 unchanged" in proc.stdout
    proc = await replay(str(path), "--json")
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [(x["id"], x["then"], x["now"]) for x in rows] == [(1, "repaired", "repaired"), (2, "failed", "failed")]
    assert json.loads(rows[0]["tool_calls"][0]["function"]["arguments"]) == {"path": "a.py", "limit": 5}
    path.with_name("bad.jsonl").write_text("not json\n")
    proc = await replay(str(path.with_name("bad.jsonl")))
    assert proc.returncode == 2


async def test_a_call_only_written_as_text_is_captured_with_the_kinds_the_reply_reported(fakes, router,
                                                                                        tmp_path: Path) -> None:
    """`<tool_call>{valid JSON}</tool_call>`, the commonest repair (`format:hermes` in the log and the header), was
    never captured: the capture looked at the repairer's own kinds, which leave the format out; beside another
    repair it listed that one alone. Both now carry the record's kinds, and a replay of them finds nothing changed."""
    up = await fakes("cloud")
    path = tmp_path / "capture.jsonl"
    r = await router(config(up.url, capture=f"{{file: '{path}'}}"))
    texts = ['<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}}</tool_call>',
             "<tool_call>{'name': 'read_file', 'arguments': {'path': 'a.py'}}</tool_call>"]
    up.push(*(Step(json=completion(t, "m")) for t in texts))
    shown = []
    for _ in texts:
        raw = await r.client().chat.completions.with_raw_response.create(
            model="m", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
        shown.append(sorted(raw.headers["x-agentgate-repairs"].split(",")))
    assert shown == [["format:hermes"], ["format:hermes", "single_quotes"]]
    doc = (await call("GET", r.url + "/ui/api/captures"))[1]
    assert [(c["outcome"], c["repairs"]) for c in doc["captures"]] == [("repaired", k) for k in shown]
    doc = (await call("GET", r.url + "/ui/api/requests?after=0"))[1]
    assert [row["repairs"] for row in doc["requests"]] == shown
    proc = await replay(str(path), "--json")
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [(x["then"], x["now"], x["now_kinds"], x["changed"]) for x in rows] == [
        ("repaired", "repaired", k, False) for k in shown]


async def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return await in_own_thread(partial(subprocess.run, [sys.executable, "-m", "router", "repair", "--replay", *args],
                                       capture_output=True, text=True, cwd=ROOT, timeout=60, check=False), timeout=70)


async def test_console_refuses_foreign_hosts_and_form_posts(fakes, router) -> None:
    up = await fakes("cloud")
    r = await router(config(up.url))  # no client keys: the Host header and JSON bodies are the guard
    status, doc = await call("GET", r.url + "/ui/api/state", headers={"Host": "attacker.example:8080"})
    assert status == 403 and doc["error"]["code"] == "host_not_allowed"
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080", "app.localhost"):
        assert (await call("GET", r.url + "/ui/api/state", headers={"Host": host}))[0] == 200, host
    status, doc = await call("POST", r.url + "/ui/api/probe", data="model=m",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert r.app[_console_key()].probe.job is None


async def test_loading_time_counts_from_the_engine_start(router) -> None:
    """An engine's "loading" time is how long it has been starting, not how long since a console first looked."""
    r = await router(f"""
models:
  - name: slow
    command: ["{sys.executable}", "-c", "import time; time.sleep(60)"]
    start_timeout: 60
    preload: true
""")
    await wait_until(lambda: r.state.supervisor.states()["slow"].state == "starting")
    await asyncio.sleep(1.0)  # the time being measured: nobody has looked at the console yet
    status, doc = await call("GET", r.url + "/ui/api/state")
    [engine] = doc["engines"]
    assert status == 200 and engine["state"] == "starting" and engine["loading_for"] >= 1.0, engine


def test_readme_page_and_api_agree_on_how_many_requests_are_shown() -> None:
    """The page keeps MAX_ROWS request rows, the API answers as many, and the README says that number."""
    import re

    from router.console.rings import RecentRequests

    script = (ROOT / "router" / "console" / "static" / "console.js").read_text()
    rows = int(re.search(r"const MAX_ROWS = (\d+);", script).group(1))  # type: ignore[union-attr]
    ring = RecentRequests()
    for _ in range(rows + 50):
        ring.observe(None, {})
    assert len(ring.after(0)) == rows
    readme = (ROOT / "README.md").read_text()
    assert f"usage by key, the last {rows} requests (model" in readme


async def test_capture_list_pages_through_the_whole_ring(fakes, router) -> None:
    """The inspector's list pages oldest first through everything the ring holds (more than one page of it), says
    which id the ring keeps from, and names the ring's instance: a restarted router numbers from 1 again."""
    up = await fakes("cloud")
    r = await router(config(up.url, capture="{max_entries: 120}"))
    async with aiohttp.ClientSession() as s:
        async def one() -> None:  # the fake echoes the broken call back: each reply is repaired and captured
            async with s.post(r.url + "/v1/chat/completions", json={"model": "m", "tools": TOOLS, "messages": [
                    {"role": "user", "content": BROKEN}]}) as resp:
                assert resp.status == 200

        await asyncio.gather(*(one() for _ in range(130)))
    seen: list[int] = []
    pages = 0
    while True:
        status, doc = await call("GET", r.url + f"/ui/api/captures?after={seen[-1] if seen else 0}")
        assert status == 200 and doc["oldest"] == 11 and doc["last"] == 130
        seen += [c["id"] for c in doc["captures"]]
        pages += 1
        if not doc["more"]:
            break
    assert seen == list(range(11, 131)) and pages == 2
    epoch = doc["epoch"]
    assert isinstance(epoch, str) and epoch
    assert (await call("GET", r.url + "/ui/api/captures/10"))[0] == 404
    status, doc = await call("GET", r.url + "/ui/api/captures?after=130")
    assert doc["captures"] == [] and doc["more"] is False and doc["epoch"] == epoch

    other = await router(config(up.url))  # another process's ring, as after a restart
    status, doc = await call("GET", other.url + "/ui/api/captures?after=0")
    assert doc["epoch"] != epoch and doc["oldest"] == 1 and doc["last"] == 0 and doc["captures"] == []


async def test_requests_and_log_name_their_process(fakes, router) -> None:
    """The request list and the log number their entries from 1 in each router process and say whose numbers they
    are (`epoch`), as the capture ring does: a console that saw entry 50 of a router that restarted asks again from 0
    instead of waiting for the new one to reach 50."""
    up = await fakes("cloud")
    r = await router(config(up.url))
    status, _ = await call("POST", r.url + "/v1/chat/completions",
                           json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200
    epochs = {}
    for path in ("requests", "log"):
        status, doc = await call("GET", r.url + f"/ui/api/{path}?after=0")
        assert status == 200 and isinstance(doc["epoch"], str) and len(doc["epoch"]) == 16
        assert doc["last"] >= (1 if path == "requests" else 0)
        epochs[path] = doc["epoch"]
        status, again = await call("GET", r.url + f"/ui/api/{path}?after={doc['last']}")
        assert again["epoch"] == doc["epoch"]
    other = await router(config(up.url))  # another process, as after a restart
    for path in ("requests", "log"):
        status, doc = await call("GET", other.url + f"/ui/api/{path}?after=0")
        assert doc["epoch"] != epochs[path]
