"""Tool-name normalisation: map what a model wrote to exactly one declared name, or to none."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_PREFIX = re.compile(r"^(?:functions?|tools?|default_api|api)[.:/]", re.IGNORECASE)
_FUZZY_CUTOFF = 0.88


def _canon(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")


class NameResolver:
    """Resolves names against a fixed declared set; results are memoised per instance."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._exact = frozenset(self.names)
        canon: dict[str, list[str]] = {}
        for n in self.names:
            canon.setdefault(_canon(n), []).append(n)
        self._canon = canon
        self._memo: dict[str, str | None] = {}

    def resolve(self, name: str) -> str | None:
        """The declared name `name` stands for, or None when there is no unique one."""
        if name in self._exact:
            return name
        hit = self._memo.get(name, "")
        if hit != "":
            return hit
        out = self._resolve(name)
        if len(self._memo) < 4096:
            self._memo[name] = out
        return out

    def _resolve(self, name: str) -> str | None:
        if not self.names or not isinstance(name, str):
            return None
        cleaned = name.strip().strip("\"'`").strip()
        while True:
            stripped = _PREFIX.sub("", cleaned, count=1)
            if stripped == cleaned:
                break
            cleaned = stripped
        if not cleaned or len(cleaned) > 128:
            return None
        if cleaned in self._exact:
            return cleaned
        same = self._canon.get(_canon(cleaned))
        if same:
            return same[0] if len(same) == 1 else None
        close = difflib.get_close_matches(_canon(cleaned), list(self._canon), n=2, cutoff=_FUZZY_CUTOFF)
        if len(close) == 1 and len(self._canon[close[0]]) == 1:
            return self._canon[close[0]][0]
        return None
