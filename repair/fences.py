"""Fenced code blocks, read along a text once.

A model showing a call's syntax puts it in a fenced block; kinds that would otherwise read such lines as calls
(`Kind.unfenced`) ask whether their candidate lies in one. Fences are read as CommonMark reads them: a line of
spaces or tabs (any depth: in a list item a fence is indented further), then a run of three or more backticks or
tildes opens one (a backtick fence's info string holds no backtick), a run of the same character at least as
long with nothing after it closes it, and one never closed runs to the end.

The state after a piece of text (`Fence`) carries the line being read, so a text read in pieces, cut anywhere,
gives what reading it whole gives; `Fences` holds one text's state where the last question left it, so the
questions of a text (in its order) read it once between them, not each from its start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

LEAD, RUN, AFTER, OTHER = range(4)  # the line so far: spaces only, in its leading run, past that run, no fence


class Fence(NamedTuple):  # (a named tuple, as `markers.Ticks`: cheap to make and to compare)
    """The fenced code blocks of the text read so far: `open` is the run that opened the block the text is in ("":
    none). The line being read: `phase` (LEAD, RUN, AFTER, OTHER), the character `char` of its leading run and the
    run's length `run`; past the run, `tick` whether a backtick followed it and `blank` whether only spaces and
    tabs did."""

    open: str = ""
    phase: int = LEAD
    char: str = ""
    run: int = 0
    tick: bool = False
    blank: bool = True


TEXT_START = Fence()
_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)", re.MULTILINE)
_INDENT = re.compile(r"[ \t]*")
_RUNS = {"`": re.compile("`*"), "~": re.compile("~*")}


def _after_line(open_: str, char: str, run: int, tick: bool, blank: bool) -> str:
    """`open` after a fence line: a run of `run` `char`s, then text holding a backtick (`tick`) or not, blank or
    not."""
    if not open_:
        return char * run if char == "~" or not tick else ""
    return "" if char == open_[0] and run >= len(open_) and blank else open_


def _line_end(state: Fence) -> str:
    """`open` once the line being read ends."""
    if state.phase == AFTER or (state.phase == RUN and state.run >= 3):
        return _after_line(state.open, state.char, state.run, state.tick, state.blank)
    return state.open


def _on_line(state: Fence, text: str, i: int, end: int) -> Fence:
    """The state after `text[i:end]`, which holds no newline."""
    phase = state.phase
    if i >= end or phase == OTHER:
        return state
    if phase == AFTER:
        return state._replace(tick=state.tick or text.find("`", i, end) >= 0,
                              blank=state.blank and not text[i:end].strip(" \t"))
    if phase == LEAD:
        i = _INDENT.match(text, i, end).end()  # type: ignore[union-attr]
        if i == end:
            return state
        if text[i] not in "`~":
            return Fence(state.open, OTHER)
        state = state._replace(phase=RUN, char=text[i])
    k = _RUNS[state.char].match(text, i, end).end()  # type: ignore[union-attr]
    run = state.run + k - i
    if k == end:
        return state._replace(run=run)
    if run < 3:
        return Fence(state.open, OTHER)
    rest = text[k:end]
    return state._replace(phase=AFTER, run=run, tick="`" in rest, blank=not rest.strip(" \t"))


def fence_after(state: Fence, text: str, start: int = 0, end: int | None = None) -> Fence:
    """The `Fence` after `text[start:end]`, when it was `state` at `start`."""
    end = len(text) if end is None else end
    nl = text.find("\n", start, end)
    if nl < 0:
        return _on_line(state, text, start, end)
    open_ = _line_end(_on_line(state, text, start, nl))
    last = text.rfind("\n", nl, end)
    if last > nl and (text.find("```", nl, last) >= 0 or text.find("~~~", nl, last) >= 0):  # (prose: no regex)
        for m in _FENCE_LINE.finditer(text, nl + 1, last + 1):  # the whole lines between
            run, rest = m.group(1), m.group(2)
            open_ = _after_line(open_, run[0], len(run), "`" in rest, not rest.strip(" \t"))
    return _on_line(Fence(open_), text, last + 1, end)


def fenced(state: Fence) -> bool:
    """Whether a candidate where the text read ends lies in a fenced block (the line before it on its line, if any,
    read as a whole line: what precedes a candidate at a line's start is whole lines)."""
    return bool(_line_end(state))


@dataclass
class Fences:
    """One text's fenced blocks as far as they were asked about: `state` at position `at`. Its questions come in
    the text's order (the candidates of one reading of it), each read on from the last one's place."""

    state: Fence = TEXT_START
    at: int = 0

    def inside(self, text: str, p: int, base: int = 0) -> bool:
        """Whether position `p` of `text`, which begins at `base` of the whole text, lies in a fenced block. `text`
        holds the whole text from `at` on; a question behind `at` (or before `text`) reads `text` afresh from its
        start (for a `base` of 0, the right answer at the cost of reading again)."""
        start = self.at - base
        if not 0 <= start <= p:
            self.state, start = TEXT_START, 0
        self.state = fence_after(self.state, text, start, p)
        self.at = base + p
        return fenced(self.state)

    def line_start(self, text: str, p: int, base: int = 0) -> None:
        """Position `p` of `text` (which begins at `base` of the whole text, as for `inside`) begins a line as a
        newline would (where content begins after a think block): the line before it ends there."""
        self.inside(text, p, base)
        self.state = Fence(_line_end(self.state))
