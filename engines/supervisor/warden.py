"""Engines never outlive their router: a small sidecar process that stops the engines' process groups when the
router dies without stopping them (SIGKILL, the OOM killer, a crash).

The supervisor starts one warden (`python -m engines.supervisor.warden`) next to its first engine, in a session
of its own, and tells it over a pipe which process groups to watch (`add PGID` / `del PGID` lines) and which folder
of its own to remove (`dir PATH`: the sockets' temporary folder). The warden does nothing else until that pipe reaches
end of file, which happens as soon as the router's process is gone, for whatever reason, on any POSIX system,
with no polling. It then sends SIGTERM to every group still listed, waits up to the grace period, SIGKILLs what
is left and removes the folder. A normal shutdown stops the engines first and closes the pipe with no group
listed, so the warden signals nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .process import isolated_env

LOG = logging.getLogger("agentgate.engine")


class Warden:
    """The router's side: starts the sidecar and keeps its list of process groups current."""

    RESPAWN_BASE = 0.5  # seconds before the second respawn in a row, doubling up to RESPAWN_CAP
    RESPAWN_CAP = 30.0
    STEADY = 60.0  # a warden that lived this long resets the backoff

    def __init__(self, python: str = sys.executable, grace: float = 10.0) -> None:
        self._python = python
        self._grace = grace
        self._proc: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[None] | None = None
        self._failed = False
        self._closing = False
        self._groups: set[int] = set()  # what a respawned warden is told again
        self._folders: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._deaths = 0
        self.respawns = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the sidecar once (concurrent callers share the start). A warden that cannot start is logged
        and left out: engines then run unguarded, as any child process would."""
        if self._proc is not None or self._failed:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._spawn())
        await asyncio.shield(self._starting)

    async def _spawn(self) -> None:
        try:
            isolate = ["-I"] if sys.version_info < (3, 11) else []  # before 3.11 PYTHONSAFEPATH means nothing
            proc = await asyncio.create_subprocess_exec(
                self._python, *isolate, "-m", "engines.supervisor.warden", "--grace", f"{self._grace:g}",
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
                env=isolated_env(os.environ),
            )
        except Exception as exc:  # OSError, or anything else: the engines must still start
            self._failed = True
            LOG.warning("engine warden could not start (%s): engines will not be stopped if the router is "
                        "killed", exc)
            return
        self._proc = proc
        for folder in sorted(self._folders):  # a respawned warden is told everything again
            self._send(f"dir {folder}\n")
        for pgid in sorted(self._groups):
            self._send(f"add {pgid}\n")
        self._watcher = asyncio.ensure_future(self._watch(proc, asyncio.get_running_loop().time()))

    async def _watch(self, proc: asyncio.subprocess.Process, started: float) -> None:
        """The warden died while the router lives (killed, OOM): say so and start another, with backoff when
        it keeps dying."""
        code = await proc.wait()
        if self._closing or self._proc is not proc:
            return
        self._proc = None
        loop = asyncio.get_running_loop()
        self._deaths = 1 if loop.time() - started >= self.STEADY else self._deaths + 1
        delay = 0.0 if self._deaths == 1 else min(self.RESPAWN_CAP, self.RESPAWN_BASE * 2 ** (self._deaths - 2))
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        LOG.warning("engine warden (pid %d) %s; starting a new one%s", proc.pid, how,
                    f" in {delay:g}s" if delay else "")
        if delay:
            await asyncio.sleep(delay)
        if self._closing:
            return
        self.respawns += 1
        self._starting = asyncio.ensure_future(self._spawn())
        await asyncio.shield(self._starting)

    def watch(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._send(f"add {pgid}\n")

    def forget(self, pgid: int) -> None:
        self._groups.discard(pgid)
        self._send(f"del {pgid}\n")

    def remove_on_exit(self, folder: str) -> None:
        self._folders.add(folder)
        self._send(f"dir {folder}\n")

    def _send(self, line: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or proc.stdin.is_closing():
            return
        try:
            proc.stdin.write(line.encode())
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            LOG.warning("engine warden is gone (pid %d): engines will not be stopped if the router is killed",
                        proc.pid)

    async def close(self, timeout: float = 5.0) -> None:
        """End the sidecar (after the engines were stopped): closing its pipe is the whole protocol."""
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher
        if self._starting is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._starting)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


# -- the sidecar ---------------------------------------------------------------------------------------------------
def _alive(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie (a zombie is dead, only waiting to be reaped)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):  # a group we may not signal is not ours any more
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _signal(groups: Iterable[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def stop_groups(groups: set[int], grace: float) -> set[int]:
    """SIGTERM every group, wait up to `grace` seconds for them to go, SIGKILL the rest; returns the groups that
    needed SIGKILL."""
    live = {g for g in groups if _alive(g)}
    _signal(live, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = {g for g in live if _alive(g)}
    _signal(live, signal.SIGKILL)
    return live


def read_orders(lines: Iterable[bytes]) -> tuple[set[int], set[str]]:
    """Apply `add PGID` / `del PGID` / `dir PATH` lines until the input ends; returns the groups still listed
    and the folders to remove."""
    groups: set[int] = set()
    folders: set[str] = set()
    for raw in lines:
        op, _, value = raw.rstrip(b"\n").partition(b" ")
        if op == b"dir":
            if value.startswith(b"/"):
                folders.add(os.fsdecode(value))
            continue
        try:
            pgid = int(value)
        except ValueError:
            continue
        if pgid <= 1:  # never the whole session or init
            continue
        if op == b"add":
            groups.add(pgid)
        elif op == b"del":
            groups.discard(pgid)
    return groups, folders


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.supervisor.warden",
                                     description="Stop the listed process groups when standard input ends.")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the router, which shuts down itself
    groups, folders = read_orders(sys.stdin.buffer)
    if groups:
        killed = stop_groups(groups, args.grace)
        with contextlib.suppress(OSError):  # the router's stderr may be gone with it
            print(f"agentgate warden: the router is gone; stopped engine process groups {sorted(groups)}"
                  + (f" (SIGKILL for {sorted(killed)})" if killed else ""), file=sys.stderr, flush=True)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
