"""Tool-name normalisation: map what a model wrote to exactly one declared name, or to none."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PREFIX = re.compile(r"^(?:to=)?(?:functions?|tools?|default_api|api)[.:/]", re.IGNORECASE)
_GLUED = re.compile(r"<|\s+json\b")  # a name ends before markup: `get_weather<|channel|>commentary`, `shell json`
_WORD_BREAK = re.compile(r"[^0-9A-Za-z]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _words(name: str) -> tuple[str, ...]:
    """The words of a name, lower-cased: `read_file`, `read-file`, `Read File` and `readFile` are the same two."""
    return tuple(w.lower() for w in _WORD_BREAK.split(name) if w)


def _canon(name: str) -> str:
    return "".join(_words(name)) if name.isascii() else name.lower()


def one_slip(written: str, declared: str) -> bool:
    """Whether `written` is `declared` with one slip of the keyboard inside the word: two neighbouring letters
    swapped, or one letter changed, added or dropped, never the first letter, in a word of 4 letters or more. A word
    changed at its start (un-lock, re-start, get/set, block/lock) is another word, with another meaning."""
    if min(len(written), len(declared)) < 4 or written[0] != declared[0] or abs(len(written) - len(declared)) > 1:
        return False
    if len(written) == len(declared):
        diff = [i for i, (a, b) in enumerate(zip(written, declared, strict=True)) if a != b]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and written[diff[0]] == declared[diff[1]] and written[diff[1]] == declared[diff[0]])
    short, long_ = sorted((written, declared), key=len)
    i = next((k for k, (a, b) in enumerate(zip(short, long_, strict=False)) if a != b), len(short))
    return short[i:] == long_[i + 1:]


def _near(written: tuple[str, ...], declared: tuple[str, ...]) -> bool:
    """The same words in the same order, one of them with one slip (see `one_slip`)."""
    if len(written) != len(declared):
        return False
    slips = [(w, d) for w, d in zip(written, declared, strict=True) if w != d]
    return len(slips) == 1 and one_slip(*slips[0])


class NameResolver:
    """Resolves names against a fixed declared set; results are memoised per instance."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._exact = frozenset(self.names)
        canon: dict[str, list[str]] = {}
        for n in self.names:
            canon.setdefault(_canon(n), []).append(n)
        self._canon = canon
        self._words = tuple((n, _words(n)) for n in self.names)
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
        if not cleaned or len(cleaned) > 256:
            return None
        glued = _GLUED.search(cleaned)  # a special token or the format's next word glued on by a server's parser
        if glued is not None and glued.start() > 0:
            cleaned = cleaned[:glued.start()]
        if len(cleaned) > 128:
            return None
        if cleaned in self._exact:
            return cleaned
        canon = _canon(cleaned)
        same = self._canon.get(canon)
        if same:
            return same[0] if len(same) == 1 else None
        if cleaned.endswith("json") and cleaned[:-4] in self._exact:  # harmony's `<|constrain|>json` glued to
            return cleaned[:-4]  # the name as written (gpt-oss: "shelljson"); never `export_json` for `export`
        words = _words(cleaned)  # a typo: never a name whose words differ in meaning (lock/unlock, get/set)
        close = [n for n, declared in self._words if _near(words, declared)]
        return close[0] if len(close) == 1 else None
