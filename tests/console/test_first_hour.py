"""What a new user meets first: clear errors naming the right model, `check`, `--version`, `--help`, a busy port,
per-key usage, and the metrics label of a model that could not be served."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
import pytest

from router.config import ConfigError, parse_config
from tests.ops.conftest import sample
from tests.waiting import in_own_thread

ROOT = Path(__file__).resolve().parents[2]


def agentgate(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, check=False)


UNAVAILABLE = """
providers:
  lab: {type: openai, base_url: "${LAB_URL}"}
  cloud: {type: openai, base_url: https://api.example.invalid/v1, api_key: "${CLOUD_KEY}"}
models:
  - {name: coder, provider: lab}
  - {name: gpt-4o-mini, provider: cloud}
  - {name: smart, fallbacks: [coder, gpt-4o-mini]}
  - {name: "openai/*", provider: cloud}
"""


async def test_unavailable_models_are_named_as_asked_and_counted_under_their_entry(router) -> None:
    r = await router(UNAVAILABLE)
    client = r.client()
    for asked, entry, must in (("smart", "smart", ["fallback 'coder' via lab", "fallback 'gpt-4o-mini' via cloud"]),
                               ("openai/gpt-5", "openai/*", ["cloud: environment variable CLOUD_KEY"]),
                               ("coder", "coder", ["lab: environment variable LAB_URL"])):
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model=asked, messages=[{"role": "user", "content": "x"}])
        assert err.value.status_code == 503
        message = err.value.message
        assert f"Model '{asked}' is unavailable" in message, message
        assert all(m in message for m in must), message
        async with aiohttp.ClientSession() as s, s.get(r.url + "/metrics") as resp:
            text = await resp.text()
        assert sample(text, "agentgate_requests_total", model=entry, status="503") == 1, entry
    assert sample(text, "agentgate_requests_total", model="-") is None


def test_base_url_without_a_scheme_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("providers:\n  lab: {type: openai, base_url: '${LAB}'}\nmodels: [{name: m, provider: lab}]",
                     env={"LAB": "localhost:8001/v1"})
    assert "providers.lab.base_url" in str(err.value) and "http://localhost:8001/v1" in str(err.value)
    with pytest.raises(ConfigError):
        parse_config("providers:\n  lab: {type: openai, base_url: 'localhost:8001/v1'}\nmodels: []")
    with pytest.raises(ConfigError) as pre:
        parse_config("providers:\n  lab: {type: openai, base_url: 'http://x'}\n"
                     "models: [{name: m, provider: lab, preload: true}]")
    assert "models[0].preload" in str(pre.value)


def test_check_refuses_a_file_without_models(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("server: {port: 9000}\n")
    proc = agentgate("check", "--config", str(empty))
    assert proc.returncode == 1 and "no models are configured" in proc.stderr and "ok" not in proc.stdout
    none_usable = tmp_path / "none.yaml"
    none_usable.write_text(UNAVAILABLE)
    proc = agentgate("check", "--config", str(none_usable))
    assert proc.returncode == 1 and "no model is available" in proc.stdout
    proc = agentgate("check", "--config", str(ROOT / "config.yaml"))
    assert proc.returncode == 0 and ": ok" in proc.stdout


def test_version_and_help_examples() -> None:
    proc = agentgate("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("agentgate ")
    proc = agentgate("--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout and "agentgate serve" in proc.stdout
    assert "repair --replay" in proc.stdout


async def test_a_busy_port_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server: {{port: {port}}}\nmodels: [{{name: demo, engine: mlx, model: 'tiny:demo'}}]\n")
    try:
        proc = await in_own_thread(agentgate, "serve", "--config", str(cfg), timeout=70)
    finally:
        busy.close()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("agentgate:")]
    assert errors == [f"agentgate: cannot listen on 127.0.0.1:{port}: address already in use "
                      "(is another agentgate running? --port picks another port)"], proc.stderr


async def test_a_host_name_that_does_not_resolve_is_named_with_the_resolver_reason(tmp_path: Path) -> None:
    host = "agentgate-no-such-host.invalid"
    with pytest.raises(socket.gaierror) as resolved:
        socket.getaddrinfo(host, 0)
    reason = str(resolved.value.strerror).lower()  # "name or service not known" (glibc), as this resolver says it
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: {api_keys: [k-0123456789abcdef]}\n"  # (a client key: not refused as an open relay)
                   "models: [{name: demo, engine: mlx, model: 'tiny:demo'}]\n")
    proc = await in_own_thread(agentgate, "serve", "--config", str(cfg), "--host", host, "--port", "0", timeout=70)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("agentgate:")]
    assert errors == [f"agentgate: cannot listen on {host}:0: {reason}"], proc.stderr  # not "unknown error -2"


async def test_embeddings_on_an_mlx_engine_say_what_it_serves(router) -> None:
    r = await router("models: [{name: demo, engine: mlx, model: 'tiny:demo'}]")
    with pytest.raises(openai.BadRequestError) as err:
        await r.client().embeddings.create(model="demo", input="x")
    assert err.value.code == "unsupported_endpoint"
    assert "local MLX engine, which serves chat completions and completions only" in err.value.message
    assert r.state.supervisor.states()["demo"].state == "stopped"  # refused without loading the model


async def test_usage_by_key_name(router, fakes) -> None:
    up = await fakes("up")
    r = await router(f"""
server:
  api_keys: [{{key: sk-alice-0123456789abcdef, name: alice}}, sk-anon-0123456789abcdef]
providers:
  up: {{type: openai, base_url: "{up.url}"}}
models: [{{name: m, provider: up}}]
""")
    for key, n in (("sk-alice-0123456789abcdef", 2), ("sk-anon-0123456789abcdef", 1)):
        for _ in range(n):
            await r.client(key).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    async with aiohttp.ClientSession() as s, s.get(r.url + "/metrics") as resp:
        text = await resp.text()
    assert sample(text, "agentgate_key_requests_total", key="alice") == 2
    assert sample(text, "agentgate_key_requests_total", key="key1") == 1
    assert sample(text, "agentgate_key_tokens_total", key="alice", type="prompt") == 10
    assert "sk-alice" not in text and "sk-anon" not in text


def test_repair_exit_status_says_whether_it_failed(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {
        "name": "get_time", "parameters": {"type": "object", "properties": {}}}}]))
    ok = agentgate("repair", "--tools", str(tools), stdin='<tool_call>{"name": "get_time", "arguments": {}}')
    assert ok.returncode == 0 and json.loads(ok.stdout)["tool_calls"]
    bad = agentgate("repair", "--tools", str(tools), stdin='<tool_call>{"name": "launch", "arguments": {}}</tool_call>')
    assert bad.returncode == 1 and json.loads(bad.stdout)["errors"][0]["kind"] == "unknown_name"
