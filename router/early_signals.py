"""The service manager and the router's start: a SIGHUP that comes while the router is still starting
(`systemctl start` then `reload` at once) ended the process by its default action, and a service manager counts
that as a clean stop, so the router stayed down. From the first line of `agentgate serve` on, it is noted instead,
and the running router reloads once for it. And `notify`: systemd's readiness protocol (`Type=notify`), so that
`systemctl start` returns once the router listens, and a reload right after it finds the router running."""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import FrameType

_pending = threading.Event()


def _note(signum: int, frame: FrameType | None) -> None:
    _pending.set()


def defer_sighup() -> None:
    """Until the running router handles SIGHUP itself, one that comes is noted (POSIX, main thread)."""
    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, _note)


def take_deferred_sighup() -> bool:
    """Whether a SIGHUP came before the router handled them (and forget it)."""
    came = _pending.is_set()
    _pending.clear()
    return came


def notify(state: str) -> bool:
    """`state` ("READY=1", "STOPPING=1", "RELOADING=1") to the service manager when it asked (NOTIFY_SOCKET);
    whether it was sent."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return False
    address = "\0" + path[1:] if path[0] == "@" else path  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
