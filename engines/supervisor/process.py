"""One supervised child process: spawned in its own process group, output forwarded to the
`agentgate.engine` logger line by line, exit observed as soon as the process dies (even while a
grandchild still holds its pipes), and stopped as a group with SIGTERM, then SIGKILL."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from .warden import Warden

LOG = logging.getLogger("agentgate.engine")

_MAX_LINE = 8192
_KILL_WAIT = 5.0
_LINE_BREAK = re.compile(rb"[\r\n]")
_CAUSE_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b|agentgate engine:)")
_ABS_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/'\":,]+/)+([^\s/'\":,]*)")


def isolated_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a Python child started with `-m`: its working directory is never put on `sys.path`
    (PYTHONSAFEPATH, Python >= 3.11), so a `queue.py` in the router's directory cannot run inside it."""
    return {**env, "PYTHONSAFEPATH": "1"}


def one_line_cause(lines: Sequence[str], limit: int = 300) -> str:
    """The likeliest cause of a failure in a process's last output lines, on one line: the last exception line
    (`ValueError: ...`) or our own `agentgate engine: ...` message, else the last line; absolute paths shortened
    to their last part (no traceback, no file system layout)."""
    kept = [line.strip() for line in lines if line.strip()]
    if not kept:
        return ""
    pick = next((line for line in reversed(kept) if _CAUSE_LINE.match(line)), kept[-1])
    pick = _ABS_PATH.sub(lambda m: m.group(1) or "/", pick)
    return pick if len(pick) <= limit else pick[:limit] + "…"


def _zombie(pid: int) -> bool | None:
    """Whether our child `pid`, which still has a process table entry, has exited (a zombie waiting to be reaped);
    None when this system cannot say. `waitid` with WNOWAIT leaves the status for the child watcher to collect
    (Linux; macOS from Python 3.13); older Pythons on macOS read the process state with sysctl."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return _darwin_zombie(pid) if sys.platform == "darwin" else None
    try:
        info = waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped meanwhile
        return True
    except OSError:
        return None
    return info is not None


_SZOMB = 5  # macOS <sys/proc.h>: p_stat of a process that exited and was not reaped yet
_P_STAT_OFFSET = 36  # struct kinfo_proc: kp_proc (struct extern_proc) begins with p_un (16 bytes), p_vmspace,
# p_sigacts (pointers), p_flag (int); p_stat (char) follows
_KINFO_PROC_SIZE = 648  # sizeof(struct kinfo_proc) on 64-bit macOS


def _darwin_zombie(pid: int) -> bool | None:
    """`_zombie` for macOS before Python 3.13 (no os.waitid there): sysctl(CTL_KERN, KERN_PROC, KERN_PROC_PID),
    as ps(1) reads a process's state."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        mib = (ctypes.c_int * 4)(1, 14, 1, pid)  # CTL_KERN, KERN_PROC, KERN_PROC_PID
        buf = ctypes.create_string_buffer(_KINFO_PROC_SIZE)
        size = ctypes.c_size_t(_KINFO_PROC_SIZE)
        if libc.sysctl(mib, 4, buf, ctypes.byref(size), None, ctypes.c_size_t(0)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    if size.value != _KINFO_PROC_SIZE:  # no such process (0), or a layout this code does not know
        return None if size.value else True
    return buf.raw[_P_STAT_OFFSET] == _SZOMB


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, child: ChildProcess) -> None:
        self._child = child

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport has the SubprocessTransport methods without subclassing it
        self._child._transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._child._feed(data.encode() if isinstance(data, str) else data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._child._flush()

    def process_exited(self) -> None:
        self._child._exited()


class ChildProcess:
    """A running child. Create with `await ChildProcess.spawn(...)`."""

    def __init__(self, name: str, *, tail_lines: int = 20) -> None:
        self.name = name
        self.stop_requested = False
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._transport: asyncio.SubprocessTransport | None = None
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._closed = False
        self._warden: Warden | None = None
        self.wrote = asyncio.Event()  # set on every line of output (readiness probing clears it)

    @classmethod
    async def spawn(cls, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                    cwd: str | None = None, tail_lines: int = 20, warden: Warden | None = None) -> ChildProcess:
        """Start `argv` in a new session (so its process group id is its pid); stdout and stderr are merged
        and forwarded to the log. With a `warden`, the group is stopped if this process dies without closing
        the child. Raises OSError when the program cannot be executed."""
        loop = asyncio.get_running_loop()
        child = cls(name, tail_lines=tail_lines)
        await loop.subprocess_exec(
            lambda: _Protocol(child), *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=dict(env) if env is not None else None, cwd=cwd,
            start_new_session=True,
        )
        if warden is not None:
            child._warden = warden
            warden.watch(child.pid)
        return child

    @property
    def pid(self) -> int:
        assert self._transport is not None
        return self._transport.get_pid()

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    @property
    def exited(self) -> asyncio.Future[int]:
        """Resolves to the exit status when the process dies (negative: killed by that signal)."""
        return self._exit

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def running(self) -> bool:
        """Whether the process is known to be alive right now: not exited, not reaped, and not a zombie whose exit
        has yet to be collected. False where that cannot be told (a caller then treats it as possibly exiting).
        Asks without collecting the exit status, which belongs to the event loop's child watcher."""
        if self._exit.done() or self._transport is None or self._closed:
            return False
        pid = self.pid
        try:
            os.kill(pid, 0)
        except OSError:  # reaped (its exit is on its way to the loop), or not ours to ask about
            return False
        zombie = _zombie(pid)
        return zombie is False

    def exit_reason(self) -> str:
        """`exited with code 3` / `killed by SIGKILL`, followed by the last output lines."""
        code = self.returncode
        if code is None:
            what = "still running"
        elif code < 0:
            try:
                what = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"killed by signal {-code}"
        else:
            what = f"exited with code {code}"
        cause = self.cause() if code is None or code > 0 else ""
        return what + (f": {cause}" if cause else "")

    def cause(self) -> str:
        """The failure's cause from the last output lines, on one line (see `one_line_cause`); the whole output
        went to the log line by line."""
        return one_line_cause(list(self.tail))

    def last_output(self, lines: int = 5) -> str:
        return " | ".join(list(self.tail)[-lines:])

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the child's whole process group (the child and anything it spawned). A no-op once
        the process was closed, so that a long-gone group id is never signalled."""
        if self._transport is None or self._closed:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    async def stop(self, grace: float) -> int:
        """SIGTERM the group, wait up to `grace` seconds, then SIGKILL whatever is left of the group.
        Safe to call on a process that already exited (it still sweeps leftover group members)."""
        self.stop_requested = True
        if not self._exit.done():
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exit), grace)
            except asyncio.TimeoutError:
                LOG.warning("engine %s: no exit %.1fs after SIGTERM, sending SIGKILL", self.name, grace,
                            extra={"engine": self.name})
        self.signal_group(signal.SIGKILL)
        if not self._exit.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._exit), _KILL_WAIT)
            except asyncio.TimeoutError:
                LOG.error("engine %s: pid %d survived SIGKILL", self.name, self.pid,
                          extra={"engine": self.name})
        self.close()
        return self._exit.result() if self._exit.done() else -signal.SIGKILL

    def reap(self) -> None:
        """For a process that already exited: SIGKILL what is left of its group and release the pipes."""
        self.stop_requested = True
        self.signal_group(signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Release the transport and pipes (kills the process if it is somehow still alive)."""
        if not self._closed and self._transport is not None:
            self._closed = True
            pid = self.pid
            self._flush()
            self._transport.close()
            if self._warden is not None:
                self._warden.forget(pid)

    # -- protocol callbacks -------------------------------------------------------------------------------

    def _exited(self) -> None:
        if not self._exit.done() and self._transport is not None:
            code = self._transport.get_returncode()
            self._exit.set_result(code if code is not None else -1)

    def _feed(self, data: bytes) -> None:
        self._buffer.extend(data)
        *lines, rest = _LINE_BREAK.split(bytes(self._buffer))  # \r too: progress bars redraw with it
        for line in lines:
            self._line(line)
        self._buffer = bytearray(rest)
        if len(self._buffer) > _MAX_LINE:
            self._line(bytes(self._buffer))
            self._buffer.clear()

    def _flush(self) -> None:
        if self._buffer:
            self._line(bytes(self._buffer))
            self._buffer.clear()

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            self.wrote.set()
            self.tail.append(line)
            LOG.info("engine %s: %s", self.name, line, extra={"engine": self.name})
