"""The warden: engines never outlive their router. Its protocol on its own, the SIGTERM-then-SIGKILL sweep, and a
real `agentgate serve` process SIGKILLed while an external engine (with a grandchild) runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import openai
import pytest

from engines.supervisor import warden
from engines.supervisor.warden import read_orders
from tests.waiting import line_matching, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE_SERVER = Path(__file__).resolve().parent / "fake_server.py"


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for whoever adopted it to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return not out.stdout.strip() or out.stdout.strip().startswith("Z")


def test_protocol_keeps_the_groups_still_listed() -> None:
    lines = [b"add 4242\n", b"add 5151\n", b"del 4242\n", b"add 1\n", b"add 0\n", b"bogus\n", b"add x\n",
             b"dir /tmp/agentgate-x y\n", b"dir relative\n", b"add 6161"]
    assert read_orders(lines) == ({5151, 6161}, {"/tmp/agentgate-x y"})
    assert read_orders([]) == (set(), set())


def spawn_group(*, ignore_term: bool) -> subprocess.Popen[bytes]:
    """A process group: its leader and a sleeping child, both holding the write end of the leader's stdout (end of
    file there once both are gone). A child of a leader that ignores SIGTERM ignores it too."""
    code = ("import signal, subprocess, sys, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print('up', flush=True)\n"
            "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    return proc


def all_gone(proc: subprocess.Popen[bytes], guard: float = 30.0) -> bool:
    """Whether every member of `proc`'s group is gone: its stdout, which each holds, reaches end of file. The
    guard only turns a survivor into a failure (the members sleep far longer)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], guard)
    return bool(ready) and os.read(proc.stdout.fileno(), 1) == b""


def test_stop_groups_terms_then_kills_what_ignores_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM to every group, then, once the grace ran out, SIGKILL to the group that ignored it: every member
    goes, children included."""
    events: list[tuple[str, float]] = []
    kill_group = os.killpg

    def sleep(seconds: float) -> None:
        events.append(("sleep", seconds))
        time.sleep(seconds)

    def killpg(pgid: int, sig: int) -> None:
        if sig:  # (0: a question whether the group lives)
            events.append((signal.Signals(sig).name, pgid))
        kill_group(pgid, sig)

    polite, stubborn = spawn_group(ignore_term=False), spawn_group(ignore_term=True)
    try:
        monkeypatch.setattr(warden, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
        monkeypatch.setattr(os, "killpg", killpg)
        killed = warden.stop_groups({polite.pid, stubborn.pid}, grace=0.5)
        monkeypatch.undo()
        assert killed == {stubborn.pid}
        assert polite.wait(30) == -signal.SIGTERM and stubborn.wait(30) == -signal.SIGKILL
        assert sorted(events[:2]) == sorted([("SIGTERM", polite.pid), ("SIGTERM", stubborn.pid)])
        assert events[-1] == ("SIGKILL", stubborn.pid)  # the last thing done, to that group only
        waits = [seconds for what, seconds in events[2:-1] if what == "sleep"]
        assert waits and len(waits) == len(events) - 3  # between the two: only waiting
        assert sum(waits) <= 0.5 + max(waits)  # it woke at its grace's end, not later (one poll's step at most)
        assert all_gone(polite), "a member of the SIGTERMed group survived"
        assert all_gone(stubborn), "a member of the SIGKILLed group survived"
    finally:
        for proc in (polite, stubborn):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def test_engines_stop_when_the_router_is_sigkilled(tmp_path: Path) -> None:
    """An external engine (with a grandchild in its group) and an MLX worker run; the router is SIGKILLed, so none
    of its shutdown code runs: the warden stops both groups and removes the sockets' temporary folder."""
    pidfile, childfile = tmp_path / "engine.pid", tmp_path / "grandchild.pid"
    cmd = (f"{sys.executable} {FAKE_SERVER} --port ${{PORT}} --model ext --pidfile {pidfile} "
           f"--child-pidfile {childfile}")
    config = tmp_path / "config.yaml"
    config.write_text("models:\n"  # no runtime_dir: the supervisor makes (and owns) a temporary one
                      f"  - {{name: ext, command: '{cmd}', health: /health}}\n"
                      "  - {name: demo, engine: mlx, model: 'tiny:demo'}\n", encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--config", str(config), "--port", "0",
        "--log-format", "text", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=str(ROOT))
    lines: list[str] = []
    assert proc.stdout is not None
    out = proc.stdout

    try:
        url = (await line_matching(out, r"listening url=(http://\S+)", lines)).group(1)
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
            for model in ("ext", "demo"):
                reply = await client.chat.completions.create(model=model, max_tokens=4,
                                                             messages=[{"role": "user", "content": "hi"}])
                assert reply.choices[0].message.content
        folder = Path((await line_matching(out, r"listening on unix:(\S+)/demo\.sock", lines)).group(1))
        ready = await line_matching(out, r"agentgate engine ready: model=demo .* pid=(\d+)", lines)
        worker = int(ready.group(1))
        engine, grandchild = int(pidfile.read_text()), int(childfile.read_text())
        assert not any(gone(p) for p in (engine, grandchild, worker)) and folder.is_dir()  # noqa: ASYNC240

        proc.kill()
        await proc.wait()
        await wait_until(lambda: all(gone(p) for p in (engine, grandchild, worker)), timeout=20)
        rest = (await asyncio.wait_for(out.read(), 20)).decode()
        assert "the router is gone; stopped engine process groups" in rest
        await wait_until(lambda: not folder.exists(), timeout=5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
