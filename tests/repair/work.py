"""The work a repair does, counted rather than timed (a test never asserts on a clock: load makes it flaky and a
fast machine hides a quadratic loop). What is counted is what a runaway parser does more of:

* `scanned`: characters read by the forward searches parsers share (`Ctx.find`, a `Next` past its cache);
* `closers`: closing tags an XML-style value looked at to find where it ends (`value_end`, one per tag);
* `candidates`: candidate positions the finder tried a kind at (`CandidateFinder._accept`);
* `window`: characters given to the patterns passed to `watch` (a search over its window reads it all).

Past `limit` of any one of them the count stops the repair (AssertionError), so a regression fails at once
instead of running for minutes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from repair import markers
from repair.formats import common


class Work:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, limit: int = 10**8) -> None:
        self.scanned = 0
        self.closers = 0
        self.candidates = 0
        self.window = 0
        self.limit = limit
        self._mp = monkeypatch
        real_at, real_ws, real_accept = common.Next.at, common.skip_ws, markers.CandidateFinder._accept

        def at(nx: common.Next, pos: int) -> int:
            cached = nx._from != -1 and nx._from <= pos and (nx._at == -1 or nx._at >= pos)
            got = real_at(nx, pos)
            if not cached:
                self._add("scanned", (nx.limit if got == -1 else got) - pos)
            return got

        def skip_ws(text: str, i: int, limit: int | None = None) -> int:
            self._add("closers", 1)
            return real_ws(text, i, limit)

        def accept(finder: markers.CandidateFinder, *args: Any, **kwargs: Any) -> bool:
            self._add("candidates", 1)
            return real_accept(finder, *args, **kwargs)

        monkeypatch.setattr(common.Next, "at", at)
        monkeypatch.setattr(common, "skip_ws", skip_ws)
        monkeypatch.setattr(markers.CandidateFinder, "_accept", accept)

    def watch(self, owner: Any, name: str) -> None:
        """Count the characters each search of the pattern `owner.name` is given (its window)."""
        self._mp.setattr(owner, name, _Watched(getattr(owner, name), self))

    def _add(self, counter: str, n: int) -> None:
        total = getattr(self, counter) + n
        setattr(self, counter, total)
        if total > self.limit:
            raise AssertionError(f"runaway work: {counter} past {self.limit}")


class _Watched:
    """A compiled pattern whose searches count their window."""

    def __init__(self, pattern: re.Pattern[str], work: Work) -> None:
        self._pattern = pattern
        self._work = work

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        end = len(text) if endpos is None else min(endpos, len(text))
        self._work._add("window", max(0, end - pos))
        return self._pattern.search(text, pos, end)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pattern, name)
