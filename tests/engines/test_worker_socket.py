"""`python -m engines --socket`: a real worker process on a Unix socket (mode 0600), stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import stat
import sys
from pathlib import Path

import aiohttp
import httpx2
import openai
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")
REPO_ROOT = str(Path(__file__).resolve().parents[2])


async def test_worker_process_on_unix_socket(tiny_models, tmp_path):
    sock = tmp_path / "engine.sock"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engines", "--model", str(tiny_models["think"]), "--socket", str(sock),
        "--name", "local-think", "--max-batch", "4",
        cwd=REPO_ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        lines: list[str] = []

        async def ready_line() -> str:
            while True:
                raw = await proc.stderr.readline()
                if not raw:
                    raise AssertionError("the worker exited before it was ready:\n" + "".join(lines))
                lines.append(raw.decode())
                if "agentgate engine ready" in lines[-1]:
                    return lines[-1]

        line = await asyncio.wait_for(ready_line(), 60)
        assert "model=local-think" in line and str(sock) in line
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600

        connector = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=connector) as s, s.get("http://localhost/health") as resp:
            assert resp.status == 200

        http = httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(uds=str(sock)))
        client = openai.AsyncOpenAI(base_url="http://localhost/v1", api_key="unused", http_client=http,
                                    max_retries=0)
        resp = await client.chat.completions.create(model="local-think", temperature=0,
                                                    messages=[{"role": "user", "content": "hi"}])
        assert resp.model == "local-think"
        assert resp.choices[0].message.content == "Hello! How can I help you today?"
        await http.aclose()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert not sock.exists()



async def test_a_socket_a_running_server_holds_is_refused_not_taken(tmp_path: Path) -> None:
    """A second worker given the socket of a running one unlinked it and listened there: the first ran on
    unreachable, and when it stopped it removed the second's socket."""
    path = tmp_path / "engine.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as held:
        held.bind(str(path))
        held.listen()
        inode = path.stat().st_ino
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engines", "--model", "tiny:demo", "--socket", str(path), cwd=REPO_ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        said = err.decode()
        assert proc.returncode == 1 and "Traceback" not in said, said
        assert "cannot listen" in said and "in use" in said and str(path) in said
        assert path.stat().st_ino == inode  # still the running server's socket


async def test_a_stale_socket_is_replaced_and_a_live_one_kept(tmp_path: Path) -> None:
    from engines.worker.server import _prepare_socket_path

    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
        gone.bind(str(stale))  # closed without unlinking: what a killed worker leaves
    _prepare_socket_path(stale)
    assert not stale.exists()
    live = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as held:
        held.bind(str(live))
        held.listen()
        with pytest.raises(OSError) as err:
            _prepare_socket_path(live)
        assert err.value.errno == errno.EADDRINUSE and live.exists()


async def test_a_host_beside_a_socket_is_refused_before_listening(tmp_path: Path) -> None:
    """`--host` was silently ignored with `--socket`: the worker listened on the socket only, not where asked."""
    path = tmp_path / "engine.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "engine", "--model", "tiny:demo", "--socket", str(path), "--host", "0.0.0.0",
        cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    said = err.decode()
    assert proc.returncode == 2 and "Traceback" not in said, said
    assert "--host" in said and "--socket" in said and not path.exists()
