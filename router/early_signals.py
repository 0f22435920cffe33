"""A SIGHUP that comes while the router is still starting (`systemctl start` then `reload` at once): its default
action ended the process, and a service manager counts that as a clean stop, so the router stayed down. From the
first line of the command line on, it is noted instead, and the running router reloads once for it."""

from __future__ import annotations

import signal
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
