"""Hot reload: a valid file is applied without dropping requests in flight; an invalid one is rejected with the
reason while the old config keeps serving; engines whose entries did not change keep running."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from router.api.ops import sighup_installed
from router.reload import RELOADER
from tests.fakes.openai_upstream import Step, stream_of
from tests.ops.conftest import sample
from tests.waiting import wait_until

ADMIN_KEY = "sk-admin-key-5e6f7a8b9c"
LIMITED_KEY = "sk-limited-key-1a2b3c4d"
UPSTREAM_KEY = "sk-upstream-secret-77aa88bb99"
STATS_ENGINE = Path(__file__).with_name("stats_engine.py")
HI = [{"role": "user", "content": "hi"}]


def cfg(url: str, models: str = "", server: str = "", extra_providers: str = "") -> str:
    return f"""
server:
  api_keys: [{{key: {ADMIN_KEY}, name: admin}}, {{key: {LIMITED_KEY}, name: ci, models: [demo]}}]
  {server}
providers:
  pa: {{type: openai, base_url: "{url}", api_key: "{UPSTREAM_KEY}"}}
  {extra_providers}
models:
  - {{name: demo, provider: pa, model: up-demo}}
{models}
"""


async def test_valid_reload_applies_without_dropping_a_stream(fakes, served) -> None:
    a, b = await fakes("a"), await fakes("b")
    resume = asyncio.Event()
    a.push(Step(sse=stream_of(["one ", "two ", "three"], "up-demo"), pause_after=2, resume=resume))
    r = await served(cfg(a.url))
    client = r.client(ADMIN_KEY)
    old_upstream = r.state.runtime.upstreams["pa"]

    stream = await client.chat.completions.create(model="demo", messages=HI, stream=True)
    chunks = stream.__aiter__()
    first = [await chunks.__anext__(), await chunks.__anext__()]  # role chunk, "one "; the upstream now waits
    assert first[1].choices[0].delta.content == "one "

    r.write(cfg(b.url, models="  - {name: fresh, provider: pa, model: up-fresh}"))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200, body
    assert body["status"] == "reloaded"
    assert body["changes"] == {"models": {"added": ["fresh"]}, "providers": {"changed": ["pa"]}}
    assert body["restart_required"] == []

    fresh = await client.chat.completions.create(model="fresh", messages=HI)
    assert fresh.choices[0].message.content == "echo: hi"
    assert b.requests[-1].body["model"] == "up-fresh"  # new model, new provider URL
    await client.chat.completions.create(model="demo", messages=HI)
    assert len(b.requests) == 2 and len(a.requests) == 1

    resume.set()  # the stream that started before the reload finishes on the old upstream
    rest = [c async for c in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in first + rest if c.choices)
    assert text == "one two three"
    assert rest[-1].choices[0].finish_reason == "stop"

    def closed() -> bool:
        gc.collect()
        return old_upstream._session is None  # type: ignore[attr-defined]

    await wait_until(closed, timeout=10)
    metrics = r.state.metrics.render().decode()
    assert sample(metrics, "agentgate_config_reloads_total", result="success") == 1
    assert sample(metrics, "agentgate_config_last_reload_successful") == 1


async def test_invalid_reload_is_rejected_and_old_config_serves(fakes, served) -> None:
    a = await fakes("a")
    r = await served(cfg(a.url))
    client = r.client(ADMIN_KEY)
    before = r.state.runtime

    r.write("models: [unclosed\n")
    status, body = await r.reload(ADMIN_KEY)
    assert status == 400
    assert body["error"]["code"] == "invalid_config"
    assert body["error"]["type"] == "invalid_request_error"
    assert "invalid YAML" in body["error"]["message"]
    assert "previous config keeps serving" in body["error"]["message"]

    r.write(cfg(a.url).replace("name: demo, provider: pa", "name: demo, provider: nowhere"))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 400 and "unknown provider 'nowhere'" in body["error"]["message"]

    # a value in the wrong place must not echo a secret the running config holds
    r.write(cfg(a.url).replace("name: demo, provider: pa", f"name: demo, provider: pa, aliases: {UPSTREAM_KEY}"))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 400 and "aliases" in body["error"]["message"]
    assert UPSTREAM_KEY not in str(body)

    assert r.state.runtime is before
    reply = await client.chat.completions.create(model="demo", messages=HI)
    assert reply.choices[0].message.content == "echo: hi"
    metrics = r.state.metrics.render().decode()
    assert sample(metrics, "agentgate_config_reloads_total", result="failure") == 3
    assert sample(metrics, "agentgate_config_last_reload_successful") == 0
    assert UPSTREAM_KEY not in metrics and ADMIN_KEY not in metrics


async def test_a_rejected_reload_never_answers_or_logs_a_key_only_the_new_file_holds(
        fakes, served, access_lines) -> None:
    """The running config's keys are not the only ones: a provider the new file adds, written in the wrong shape
    (a list, LiteLLM's habit), is quoted neither in the 400 nor in the log line (the console's log view)."""
    a = await fakes("a")
    r = await served(cfg(a.url))
    new_key = "sk-new-provider-SECRET-fedcba9876543210"
    r.write(f"server: {{api_keys: ['{ADMIN_KEY}']}}\nproviders:\n"
            f"  - {{name: b, type: openai, base_url: '{a.url}', api_key: '{new_key}'}}\n"
            "models: [{name: m, provider: b}]\n")
    status, body = await r.reload(ADMIN_KEY)
    assert status == 400 and body["error"]["code"] == "invalid_config"
    assert "providers: expected object, got list" in body["error"]["message"]
    assert new_key not in str(body) and "fedcba9876543210" not in str(body)
    assert any("config reload rejected" in line for line in access_lines.lines)
    assert not [line for line in access_lines.lines if "fedcba9876543210" in line]


async def test_reload_endpoint_auth(fakes, served, router) -> None:
    a = await fakes("a")
    r = await served(cfg(a.url))
    status, body = await r.reload()
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = await r.reload("sk-wrong")
    assert status == 401
    status, body = await r.reload(LIMITED_KEY)
    assert status == 403 and body["error"]["code"] == "admin_forbidden"
    assert ADMIN_KEY not in str(body) and LIMITED_KEY not in str(body)

    r.write(cfg(a.url, server="admin_auth: false"))
    assert (await r.reload(ADMIN_KEY))[0] == 200
    status, body = await r.reload()  # admin_auth: false now applies
    assert status == 200, body

    memory = await router(f"providers: {{pa: {{type: openai, base_url: '{a.url}'}}}}\n"
                          "models: [{name: demo, provider: pa}]")
    async with aiohttp.ClientSession() as s, s.post(memory.url + "/admin/reload") as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "reload_unavailable"


async def test_restart_only_settings_are_reported(fakes, served) -> None:
    a = await fakes("a")
    r = await served(cfg(a.url, server="port: 8080"))
    rotated = cfg(a.url, server="port: 9191\n  log_format: text\n  max_body_mb: 64\n  idle_timeout: 2").replace(
        ADMIN_KEY, "sk-rotated-77")
    r.write(rotated)
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200
    notes = body["restart_required"]
    assert any(note.startswith("server.port") and "9191" in note for note in notes)
    assert any(note.startswith("server.log_format") for note in notes)
    assert any(note.startswith("server.max_body_mb") for note in notes)
    assert any(note.startswith("server.idle_timeout") for note in notes)  # the listener's keep-alive, fixed
    assert body["changes"]["server"] == {"changed": ["api_keys"]}  # names only, never values
    assert "sk-rotated-77" not in str(body)
    server = r.state.runtime.config.server
    assert (server.port, server.log_format, server.max_body_bytes) == (8080, "json", 32 * 2**20)
    with pytest.raises(openai.AuthenticationError):  # the old key is gone, the rotated one works
        await r.client(ADMIN_KEY).chat.completions.create(model="demo", messages=HI)
    assert (await r.client("sk-rotated-77").chat.completions.create(model="demo", messages=HI)).choices


async def test_removed_provider_is_closed_and_its_gauges_dropped(fakes, served) -> None:
    a, b = await fakes("a"), await fakes("b")
    two = cfg(a.url, models="  - {name: other, provider: pb}",
              extra_providers=f'pb: {{type: openai, base_url: "{b.url}"}}')
    r = await served(two)
    client = r.client(ADMIN_KEY)
    await client.chat.completions.create(model="other", messages=HI)
    pb = r.state.runtime.upstreams["pb"]
    assert sample(r.state.metrics.render().decode(), "agentgate_breaker_state", provider="pb") == 0

    r.write(cfg(a.url))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200 and body["changes"]["providers"] == {"removed": ["pb"]}
    assert r.state.runtime.upstreams["pa"] is not None
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="other", messages=HI)

    def gone() -> bool:
        gc.collect()
        return pb._session is None and sample(  # type: ignore[attr-defined]
            r.state.metrics.render().decode(), "agentgate_breaker_state", provider="pb") is None

    await wait_until(gone, timeout=10)
    assert sample(r.state.metrics.render().decode(), "agentgate_requests_total", model="other") == 1  # history


async def test_engines_keep_running_unless_their_entry_changed(fakes, served) -> None:
    a = await fakes("a")
    engine = f'  - {{name: local, command: ["{sys.executable}", "{STATS_ENGINE}"], start_timeout: 30}}'
    r = await served(cfg(a.url))  # no engines at first: the reload creates the supervisor
    assert r.state.supervisor is None
    r.write(cfg(a.url, models=engine))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200 and body["changes"]["engines"] == {"added": ["local"]}
    client = r.client(ADMIN_KEY)
    assert (await client.chat.completions.create(model="local", messages=HI)).choices[0].message.content == "local"
    supervisor = r.state.supervisor
    pid = supervisor.states()["local"].pid
    assert pid is not None

    r.write(cfg(a.url, models=engine + "\n  - {name: fresh, provider: pa}"))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200 and "engines" not in body["changes"]
    await r.app[RELOADER].idle()
    assert supervisor.states()["local"].state == "ready" and supervisor.states()["local"].pid == pid

    r.write(cfg(a.url, models=engine.replace("start_timeout: 30", "start_timeout: 30, env: {MODE: b}")))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200 and body["changes"]["engines"] == {"restarted": ["local"]}
    await r.app[RELOADER].idle()
    assert (await client.chat.completions.create(model="local", messages=HI)).choices[0].message.content == "local"
    new_pid = supervisor.states()["local"].pid
    assert new_pid is not None and new_pid != pid


async def test_a_reload_starts_preload_engines_it_adds_or_changes(fakes, served) -> None:
    """`preload: true` was honoured only at start-up: a reload that changed a preload engine said "restarted" and
    left it stopped, and a preload entry the reload added never started."""
    a = await fakes("a")
    command = f'command: ["{sys.executable}", "{STATS_ENGINE}"], start_timeout: 30'

    def engine(name: str, more: str = "", preload: bool = True) -> str:
        return f"  - {{name: {name}, {command}{', preload: true' if preload else ''}{more}}}"

    r = await served(cfg(a.url, models=engine("one")))
    supervisor = r.state.supervisor
    await wait_until(lambda: supervisor.states()["one"].state == "ready", timeout=30)
    pid = supervisor.states()["one"].pid

    r.write(cfg(a.url, models="\n".join((engine("one", ", env: {MODE: b}"), engine("two"),
                                          engine("lazy", preload=False)))))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 200 and body["changes"]["engines"] == {"added": ["lazy", "two"], "restarted": ["one"]}
    await wait_until(lambda: supervisor.states()["one"].state == "ready" and supervisor.states()["one"].pid != pid
                     and supervisor.states()["two"].state == "ready", timeout=30)
    assert supervisor.states()["lazy"].state == "stopped"  # not preloaded: started on first use only


async def test_sighup_reloads_the_app_that_owns_it(fakes, served) -> None:
    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP on this platform")
    a = await fakes("a")
    first = await served(cfg(a.url))
    second = await served(cfg(a.url))
    loop = asyncio.get_running_loop()
    assert sighup_installed(loop)
    await second.running.stop()  # hands SIGHUP back to the first app
    assert sighup_installed(loop)  # never send SIGHUP without a handler: the default action ends the process

    first.write(cfg(a.url, models="  - {name: fresh, provider: pa}"))
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_until(lambda: "fresh" in first.state.runtime.table.exact, timeout=10)
    assert sample(first.state.metrics.render().decode(), "agentgate_config_reloads_total", result="success") == 1
    assert sample(second.state.metrics.render().decode(), "agentgate_config_reloads_total", result="success") == 0


def _serve_process(tmp_path: Path, server: str = "", env: dict[str, str] | None = None,
                   stderr: int | None = None) -> tuple[int, Any]:
    """`python -m router serve` on a free port of 127.0.0.1 (a provider it never contacts): the port, the process."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "c.yaml"
    config.write_text(f"server: {{port: {port}{', ' + server if server else ''}}}\nproviders:\n  lab: {{type: openai, "
                      "base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: lab}\n")
    proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "-c", str(config)], cwd=tmp_path,
                            env={**os.environ, **(env or {}), "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                            stdout=subprocess.DEVNULL, stderr=stderr if stderr is not None else subprocess.DEVNULL,
                            text=True)
    return port, proc


def test_a_sighup_while_starting_is_a_reload_not_a_stop(tmp_path: Path) -> None:
    """`systemctl start` then `systemctl reload` at once: the SIGHUP came before the router handled it, its default
    action ended the process, and a service manager takes that for a clean stop (no restart). Here it is sent as
    soon as the process catches it, long before the router listens (which an unfixed router also survives when its
    handler happens to be in place: the in-process test below is the one that fails without the fix)."""
    import subprocess
    import time
    import urllib.request

    port, proc = _serve_process(tmp_path, "log_format: text", stderr=subprocess.PIPE)
    try:
        status = Path(f"/proc/{proc.pid}/status")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:  # until SIGHUP is caught (long before the
            caught = [ln for ln in status.read_text().splitlines() if ln.startswith("SigCgt:")]  # router runs)
            if caught and int(caught[0].split()[1], 16) & 1:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "SIGHUP: reloading the config" in err


async def test_a_sighup_noted_before_the_router_ran_reloads_once_it_does(fakes, served) -> None:
    from router import early_signals

    early_signals.defer_sighup()
    os.kill(os.getpid(), signal.SIGHUP)  # noted, not the end of the process
    await asyncio.sleep(0)
    up = await fakes()
    s = await served(cfg(up.url))
    for _ in range(200):
        if sample(await s.metrics(), "agentgate_config_reloads_total", result="success") == 1:
            break
        await asyncio.sleep(0.05)
    assert sample(await s.metrics(), "agentgate_config_reloads_total", result="success") == 1
    assert not early_signals.take_deferred_sighup()


async def test_command_line_settings_win_on_a_reload_too(fakes, tmp_path) -> None:
    """`serve --port --log-format`: a reload of an unchanged file said a restart was needed to apply the file's
    port and format, which the command line would override again."""
    from dataclasses import replace

    from router.app import create_app, start
    from router.config import load_config

    a = await fakes("a")
    path = tmp_path / "c.yaml"
    path.write_text(cfg(a.url, server="port: 8080"))
    overrides = {"port": 18094, "log_format": "text"}
    config = load_config(path)
    config = replace(config, server=replace(config.server, **overrides))
    running = await start(create_app(config, config_path=str(path), overrides=overrides))
    try:
        async with aiohttp.ClientSession() as s, s.post(running.url + "/admin/reload",
                                                        headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as resp:
            body = await resp.json()
    finally:
        await running.stop()
    assert resp.status == 200 and body["restart_required"] == [] and body["changes"] == {}


def test_the_service_manager_hears_ready_once_the_router_listens(tmp_path: Path) -> None:
    """systemd's readiness protocol (the unit is Type=notify): `systemctl start` returns when the router listens,
    so a reload right after it finds the router running; STOPPING=1 when it is told to stop."""
    import socket
    import urllib.request

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify"))
        manager.settimeout(30)
        port, proc = _serve_process(tmp_path, env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        try:
            assert manager.recv(256) == b"READY=1"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                assert resp.status == 200  # listening already
            proc.send_signal(signal.SIGTERM)
            assert manager.recv(256) == b"STOPPING=1"
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_a_reload_to_engine_args_the_worker_refuses_keeps_the_engine(fakes, served) -> None:
    """engine_args the worker exits on were applied: the running engine was stopped and never came back."""
    a = await fakes("a")
    engine = '  - {name: local, engine: mlx, model: "tiny:demo", engine_args: [%s]}'
    r = await served(cfg(a.url, models=engine % '"--max-batch", "4"'))
    r.write(cfg(a.url, models=engine % '"--max-batch", "none"'))
    status, body = await r.reload(ADMIN_KEY)
    assert status == 400 and "models[1].engine_args: argument --max-batch" in body["error"]["message"]
    assert r.state.supervisor is not None
    assert r.state.supervisor.specs()["local"].args == ("--max-batch", "4")
