"""Access log: one JSON line per request with the documented fields, request ids end to end, no secrets; the
text format and log level from the command line; SIGHUP reload in a real `agentgate serve` process."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream, Step
from tests.ops.conftest import LogCapture
from tests.waiting import line_matching

UPSTREAM_KEY = "sk-upstream-secret-3c4d5e6f7a"
CLIENT_KEY = "sk-client-secret-8b9c0d1e2f"
HI = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parents[2]


def cfg(url: str, server: str = "") -> str:
    return f"""
server:
  api_keys: [{{key: {CLIENT_KEY}, name: alice}}]
  {server}
providers:
  up: {{type: openai, base_url: "{url}", api_key: "{UPSTREAM_KEY}", retries: 1, backoff: {{base: 0.001, max: 0.01}}}}
models:
  - {{name: demo, provider: up, model: up-demo}}
"""


async def test_one_line_per_request_with_its_fields(fakes, router, access_lines: LogCapture) -> None:
    up = await fakes("up")
    r = await router(cfg(up.url))
    client = r.client(CLIENT_KEY)

    raw = await client.chat.completions.with_raw_response.create(model="demo", messages=HI,
                                                                 extra_headers={"x-request-id": "req-abc.123"})
    assert raw.headers["x-request-id"] == "req-abc.123"
    assert sent_id(up, -1) == "req-abc.123"

    up.push(Step(status=503))
    stream = await client.chat.completions.create(model="demo", messages=HI, stream=True)
    async for _ in stream:
        pass
    generated = sent_id(up, -1)
    assert re.fullmatch(r"[0-9a-f]{24}", generated)
    assert sent_id(up, -2) == generated  # the retry carries the same id

    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=HI)
    with pytest.raises(openai.AuthenticationError):
        await r.client("sk-wrong").chat.completions.create(model="demo", messages=HI,
                                                           extra_headers={"x-request-id": "bad id with spaces"})

    docs = access_lines.docs("agentgate.access")
    assert len(docs) == 4, access_lines.lines
    first, streamed, missing, denied = docs
    assert first["msg"] == "request" and first["level"] == "info" and isinstance(first["ts"], float)
    assert first["request_id"] == "req-abc.123"
    assert first["key_name"] == "alice"
    assert first["model"] == "demo" and first["entry"] == "demo" and first["upstream_model"] == "up-demo"
    assert first["provider"] == "up" and first["status"] == 200 and first["endpoint"] == "chat"
    assert first["prompt_tokens"] == 5 and first["completion_tokens"] == 3
    assert first["retries"] == 0 and first["stream"] is False
    assert isinstance(first["latency_ms"], float) and "ttft_ms" not in first

    assert streamed["request_id"] == generated and streamed["stream"] is True
    assert streamed["retries"] == 1 and streamed["status"] == 200
    assert isinstance(streamed["ttft_ms"], float) and streamed["ttft_ms"] <= streamed["latency_ms"]

    assert missing["status"] == 404 and missing["error"] == "model_not_found" and "provider" not in missing
    assert denied["status"] == 401 and "key_name" not in denied
    assert re.fullmatch(r"[0-9a-f]{24}", denied["request_id"])  # an unusable header is replaced

    for line in access_lines.lines:
        assert UPSTREAM_KEY not in line and CLIENT_KEY not in line and "sk-wrong" not in line


async def test_repairs_are_logged(fakes, router, access_lines: LogCapture) -> None:
    try:
        from repair import repair_message  # noqa: F401
    except ImportError:
        pytest.skip("the repair package is not importable")
    from tests.fakes.openai_upstream import completion
    from tests.ops.test_metrics import REPAIRABLE, WEATHER_TOOL

    up = await fakes("up")
    up.push(Step(json=completion(REPAIRABLE, "up-demo")))
    r = await router(cfg(up.url))
    await r.client(CLIENT_KEY).chat.completions.create(model="demo", messages=HI, tools=[WEATHER_TOOL])
    (doc,) = access_lines.docs("agentgate.access")
    assert doc["tool_calls"] == "repaired" and doc["repairs"]


async def test_secrets_stay_out_of_error_bodies_and_metrics(fakes, router, access_lines: LogCapture) -> None:
    up = await fakes("up")
    echo = {"error": {"message": f"key {UPSTREAM_KEY} is not valid here", "type": "invalid_request_error"}}
    r = await router(cfg(up.url))
    bodies = []
    for status in (400, 401, 403):
        up.push(Step(status=status, json=echo))
        bodies.append(await _post(r.url, CLIENT_KEY))
    bodies.append(await _post(r.url, "sk-wrong"))
    bodies.append(await _post(r.url, None))
    assert [s for s, _ in bodies] == [400, 502, 502, 401, 401]
    for _, text in bodies:
        assert UPSTREAM_KEY not in text and CLIENT_KEY not in text and "sk-wrong" not in text
    metrics = r.state.metrics.render().decode()
    assert UPSTREAM_KEY not in metrics and CLIENT_KEY not in metrics
    for line in access_lines.lines:
        assert UPSTREAM_KEY not in line and CLIENT_KEY not in line


async def test_upstream_retryable_errors_do_not_echo_the_key(fakes, router) -> None:
    up = await fakes("up")
    echo = {"error": {"message": f"key {UPSTREAM_KEY} is rate limited", "type": "rate_limit_error"}}
    r = await router(cfg(up.url).replace("retries: 1", "retries: 0"))
    up.push(Step(status=429, json=echo), Step(status=500, json=echo))
    for _ in range(2):
        status, text = await _post(r.url, CLIENT_KEY)
        assert status in (429, 502)
        assert UPSTREAM_KEY not in text


def test_access_log_can_be_turned_off(access_lines: LogCapture) -> None:
    from router.exchange import Exchange
    from router.metrics import Metrics

    ex = Exchange("rid-1", "chat")
    ex.status = 200
    ex.finish(Metrics(), log_enabled=False)
    assert access_lines.docs("agentgate.access") == []
    ex.finish(Metrics(), log_enabled=True)
    assert access_lines.docs("agentgate.access")[0]["request_id"] == "rid-1"


async def test_serve_text_logs_level_and_sighup_without_mlx(fakes, tmp_path: Path) -> None:
    """`agentgate serve --log-format text --log-level info` in its own process, with mlx made unimportable
    (as in the router-only container image); SIGHUP reloads the file; SIGTERM drains and exits 0."""
    up = await fakes("up")
    path = tmp_path / "config.yaml"
    path.write_text(cfg(up.url), encoding="utf-8")
    boot = ("import sys\n"
            "for name in ('mlx', 'mlx.core', 'mlx_lm'):\n"
            "    sys.modules[name] = None\n"
            "from router.cli import main\n"
            "sys.exit(main())\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", boot, "serve", "--config", str(path), "--port", "0", "--log-format", "text",
        "--log-level", "info", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=str(ROOT))
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        out = proc.stdout

        url = (await line_matching(out, r"listening url=(http://\S+)", lines)).group(1)
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        await client.chat.completions.create(model="demo", messages=HI, extra_headers={"x-request-id": "cli-1"})
        access = await line_matching(out, r"agentgate\.access: request request_id=cli-1 ", lines)
        assert "key_name=alice" in access.string and "status=200" in access.string
        assert not access.string.lstrip().startswith("{")  # text, not JSON

        path.write_text(cfg(up.url).replace("models:\n", "models:\n  - {name: fresh, provider: up}\n"),
                        encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        await line_matching(out, r"config reloaded trigger=signal", lines)
        reply = await client.chat.completions.create(model="fresh", messages=HI)
        assert reply.choices[0].message.content == "echo: hi"

        path.write_text("server: [", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        await line_matching(out, r"ERROR .*config reload rejected, still serving the previous config: .*invalid YAML",
                            lines)
        assert (await client.chat.completions.create(model="fresh", messages=HI)).choices[0].message.content

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert proc.stdout is not None
        lines += (await proc.stdout.read()).decode().splitlines()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "\n".join(lines)
    assert UPSTREAM_KEY not in output and CLIENT_KEY not in output
    assert " DEBUG " not in output


def sent_id(up: FakeUpstream, index: int) -> str | None:
    """The x-request-id the upstream received with its request number `index`."""
    return {k.lower(): v for k, v in up.requests[index].headers.items()}.get("x-request-id")


async def _post(url: str, key: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = json.dumps({"model": "demo", "messages": HI})
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", data=body, headers={
            **headers, "Content-Type": "application/json"}) as resp:
        return resp.status, await resp.text()


async def test_refused_agent_requests_are_logged_with_model_stream_and_what_was_dropped(
        fakes, router, access_lines: LogCapture) -> None:
    up = await fakes("up")
    r = await router(cfg(up.url))
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with aiohttp.ClientSession(headers=auth) as s:
        async with s.post(r.url + "/v1/messages", json={"model": "demo", "stream": True, "max_tokens": 0,
                                                        "messages": HI}) as resp:
            assert resp.status == 400
        async with s.post(r.url + "/v1/responses", json={"model": "demo", "input": "hi",
                                                         "tools": [{"type": "web_search"}]}) as resp:
            assert resp.status == 200 and resp.headers["x-agentgate-dropped-tools"] == "web_search"
    refused, dropped = access_lines.docs("agentgate.access")
    assert (refused["status"], refused["model"], refused["stream"]) == (400, "demo", True)
    assert dropped["dropped_tools"] == ["web_search"]
