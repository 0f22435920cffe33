"""The progress bar counted a turn the backend failed (an error turn, not judged) as `failed`, the model's failure,
where the report and its summary keep the two apart."""

from __future__ import annotations

from router.probe.report import Progress
from tests.probe.test_toolset import Tty


def test_the_progress_bar_counts_error_turns_apart_from_failed_ones() -> None:
    tty = Tty()
    bar = Progress(4, "probe m", out=tty)
    for status in ("valid", "error", "invalid", "error"):
        bar.advance(status)
    last = tty.getvalue().rsplit("\r", 1)[-1]
    assert "valid 1  repaired 0  failed 1  not judged 2" in last
