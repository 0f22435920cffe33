"""Where a call may begin: candidate patterns shared by the one-shot parser and the streaming hold-back.

Each candidate kind is a short sequence of nodes (literals, literal choices, bounded whitespace, a tool name
followed by a terminator). The same nodes compile to a regex that finds complete candidates, and to a regex
of their proper prefixes, used while streaming to tell whether the tail of the text may still become a
candidate. A candidate whose kind carries a name only counts when that name resolves to a declared tool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from repair.fences import Fences

Fenced = Callable[[str, int], bool]  # (text, position) -> whether the position lies in a fenced code block


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class OneOf:
    options: tuple[str, ...]


@dataclass(frozen=True)
class Ws:
    max: int


@dataclass(frozen=True)
class Name:
    max: int
    terms: tuple[str, ...]


Node = Lit | OneOf | Ws | Name


@dataclass(frozen=True)
class Kind:
    """One way a call (or a reasoning/channel block) can begin."""

    key: str
    nodes: tuple[Node, ...]
    handler: Callable[..., Any] = field(compare=False)
    line_start: bool = False
    generic: bool = False  # not native markup: needs a declared name; not looked for inside <think>
    # (text, start, end of its line) -> whether the candidate may still be a call once its line is whole: False only
    # where the handler would refuse it (a stream holds such a candidate to its line's end, not the stream's). It
    # reads its line only
    line_check: Callable[[str, int, int], bool] | None = field(default=None, compare=False)
    unfenced: bool = False  # inside a fenced code block it is text (a model showing the syntax): see `repair.fences`

    @cached_property  # (asked for each candidate found)
    def named(self) -> bool:
        return any(isinstance(n, Name) for n in self.nodes)

    def first_chars(self) -> set[str]:
        first = self.nodes[0]
        if isinstance(first, Lit):
            return {first.text[0]}
        if isinstance(first, OneOf):
            return {o[0] for o in first.options}
        raise ValueError("a candidate must begin with a literal")

    def max_len(self) -> int:
        total = 0
        for n in self.nodes:
            if isinstance(n, Lit):
                total += len(n.text)
            elif isinstance(n, OneOf):
                total += max(len(o) for o in n.options)
            elif isinstance(n, Ws):
                total += n.max
            else:
                total += n.max + max(len(t) for t in n.terms)
        return total


def _node_regex(node: Node, named: bool) -> str:
    if isinstance(node, Lit):
        return re.escape(node.text)
    if isinstance(node, OneOf):
        return "(?:" + "|".join(re.escape(o) for o in sorted(node.options, key=len, reverse=True)) + ")"
    if isinstance(node, Ws):
        return f"[ \\t\\r\\n]{{0,{node.max}}}"
    group = "(?P<name>" if named else "(?:"
    terms = "|".join(re.escape(t) for t in node.terms)
    return f"{group}[A-Za-z0-9_.\\-]{{1,{node.max}}})(?:{terms})"


def kind_regex(kind: Kind, named: bool = True) -> str:
    return "".join(_node_regex(n, named) for n in kind.nodes)


def _proper_prefixes(t: str) -> str:
    """Regex for the proper prefixes of a literal ("" included): "abc" -> (?:a(?:b)?)?"""
    out = ""
    for ch in reversed(t[:-1]):
        out = f"(?:{re.escape(ch)}{out})?"
    return out


def _node_prefix(node: Node) -> str:
    if isinstance(node, Lit):
        return _proper_prefixes(node.text)
    if isinstance(node, OneOf):
        return "(?:" + "|".join(_proper_prefixes(o) for o in node.options if o) + ")"
    if isinstance(node, Ws):
        return f"[ \\t\\r\\n]{{0,{node.max}}}"
    terms = "|".join(_proper_prefixes(t) for t in node.terms)
    return f"[A-Za-z0-9_.\\-]{{0,{node.max}}}(?:{terms})"


def prefix_regex(kind: Kind) -> str:
    """Regex matching the proper prefixes of the kind's matches (names unchecked), to be anchored at the end."""
    out = ""
    for node in reversed(kind.nodes):
        full = _node_regex(node, named=False)
        out = f"(?:{_node_prefix(node)}|{full}{out})" if out else _node_prefix(node)
    return ("(?:(?<=\\n)|(?<![\\s\\S]))" if kind.line_start else "") + out


def _tokens(nodes: tuple[Node, ...], first: str | None) -> list[str]:
    """The kind as a list of regex atoms: literal characters one by one, other nodes whole."""
    out: list[str] = []
    for i, n in enumerate(nodes):
        if i == 0 and first is not None:
            out.extend(re.escape(c) for c in first)
        elif isinstance(n, Lit):
            out.extend(re.escape(c) for c in n.text)
        else:
            out.append(_node_regex(n, False))
    return out


def _factored(kinds: tuple[Kind, ...]) -> str:
    r"""One regex matching any kind, built as a trie over the kinds' atoms (`<(?:tool_call>|\|(?:...))`): every
    branch starts with a literal, so the engine skips positions that cannot begin a candidate, and shared
    prefixes are tried once (a 200 KB prose or bracket-heavy message is scanned several times faster)."""
    trie: dict[str, Any] = {}
    for k in kinds:
        first = k.nodes[0]
        options = (first.text,) if isinstance(first, Lit) else first.options if isinstance(first, OneOf) else ()
        for o in options:
            node = trie
            for tok in _tokens(k.nodes, o):
                node = node.setdefault(tok, {})
            node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [tok + emit(child) if tok else "" for tok, child in node.items()]
        if len(alts) == 1:
            return alts[0]
        if "" in alts:  # a kind ends here while others go on: try the longer ones first
            alts = [a for a in alts if a] + [""]
        return "(?:" + "|".join(alts) + ")"

    return emit(trie)


NO, PARTIAL, MATCH = 0, 1, 2
LINE_HOLD = 4096  # a candidate decided by its line (`Kind.line_check`) is held to its end for this long at most


def _partial_pattern(kinds: tuple[Kind, ...]) -> str:
    """A regex of the proper prefixes of any of `kinds`' matches, anchored at the end of the text."""
    return "(?:" + "|".join(f"(?:{prefix_regex(k)})" for k in kinds) + ")\\Z"


class _Patterns(dict[str, re.Pattern[str]]):
    """Per kind (by key): its complete candidates, a named kind's name in group "name", compiled when a candidate of
    the kind is first found (a plain dict's lookup once filled)."""

    def __init__(self, kinds: tuple[Kind, ...]) -> None:
        super().__init__()
        self._kinds = {k.key: k for k in kinds}

    def __missing__(self, key: str) -> re.Pattern[str]:
        got = self[key] = re.compile(kind_regex(self._kinds[key]))
        return got


class _Partials(dict[str, tuple[int, re.Pattern[str]]]):
    """Per first character: the longest proper prefix its kinds allow, and their partial pattern alone, compiled
    when a stream first meets a start of one of them (a plain dict once filled: its lookups cost the same)."""

    def __init__(self, by_first: dict[str, tuple[Kind, ...]]) -> None:
        super().__init__()
        self._by_first = by_first

    def __missing__(self, c: str) -> tuple[int, re.Pattern[str]]:
        ks = self._by_first[c]  # (a KeyError for a character that begins no kind, as before)
        got = self[c] = (max(k.max_len() for k in ks), re.compile(_partial_pattern(ks)))
        return got


class KindSet:
    """Patterns for a fixed tuple of kinds (immutable; one per process). Each is compiled when first used: compiled
    here, the three sets cost every process that imports the repair ~0.14 s at its start (the router's, each
    engine worker's), most of it for patterns a process may never use (a kind's own pattern is asked only when a
    candidate of that kind is found; a first character's partial pattern only when a stream's text ends with a
    start of one of its kinds)."""

    def __init__(self, kinds: tuple[Kind, ...]) -> None:
        self.kinds = kinds
        self.regex = _Patterns(kinds)
        by_first: dict[str, list[Kind]] = {}
        for k in kinds:
            for c in k.first_chars():
                by_first.setdefault(c, []).append(k)
        self.by_first = {c: tuple(v) for c, v in by_first.items()}
        self.by_head, self.wild = _by_head(self.by_first)
        self.max_len = max(k.max_len() for k in kinds)
        self.partial_by_first = _Partials(self.by_first)
        self.prefilter = re.compile("[" + "".join(re.escape(c) for c in sorted(self.by_first)) + "]")
        heads, self.quick_ends = _quick_parts(kinds)
        # where a partial candidate may begin: a head (a kind's first three characters), or a shorter start of one
        # that ends the text (a partial candidate runs to the end); a letter that begins some kind ("a", "t", "c")
        # is in most words, a head in few
        self.quick = re.compile(heads)
        self.short_ends = frozenset(e for e in self.quick_ends if 0 < len(e) < 3)

    @cached_property  # (compiled when the first finder is made: the first request's tools)
    def combined(self) -> re.Pattern[str]:
        """Any of the kinds' complete candidates (see `_factored`)."""
        return re.compile(_factored(self.kinds))

    @cached_property
    def partial(self) -> re.Pattern[str]:
        """The proper prefixes of any of the kinds' matches, anchored at the end (what `CandidateFinder.scan_stream`
        answers per first character: a reference for it)."""
        return re.compile(_partial_pattern(self.kinds))


HEAD = 3  # how many first characters of a candidate choose the kinds tried there (see `_by_head`)


def _head(kind: Kind) -> set[str] | None:
    """The first `HEAD` characters of the kind's matches; None where its first literal is shorter (what comes
    next is not fixed: `<` and a tool's name)."""
    first = kind.nodes[0]
    options = (first.text,) if isinstance(first, Lit) else first.options if isinstance(first, OneOf) else ("",)
    return None if any(len(o) < HEAD for o in options) else {o[:HEAD] for o in options}


def _by_head(by_first: dict[str, tuple[Kind, ...]]) -> tuple[dict[str, tuple[Kind, ...]], dict[str, tuple[Kind, ...]]]:
    """The kinds a candidate may be of, by its first `HEAD` characters (in `by_first`'s order), and by its first
    character those whose next ones are not fixed (for a head no kind begins with). At a `<` of prose (`<tags>`,
    which the tool_tags kind's `<` and a name match) the 49 kinds beginning with `<` were each tried with its own
    pattern; those whose literal begins otherwise cannot match there."""
    heads: dict[str, tuple[Kind, ...]] = {}
    wild: dict[str, tuple[Kind, ...]] = {}
    for c, ks in by_first.items():
        firsts = [(k, _head(k)) for k in ks]
        wild[c] = tuple(k for k, f in firsts if f is None)
        for t in set().union(*(f for _, f in firsts if f is not None)):
            if t[0] == c:  # (a kind's other options begin with other characters: their own entries)
                heads[t] = tuple(k for k, f in firsts if f is None or t in f)
    return heads, wild


def _quick_parts(kinds: tuple[Kind, ...]) -> tuple[str, tuple[str, ...]]:
    """Where a candidate, complete or partial, may begin (and more): a regex of the first three characters of a
    kind's first literal, and the shorter starts of them, which count only where they end the text. Where neither
    is found, nothing can begin (a candidate's text starts with its first literal; a partial one runs to the end,
    so it holds that literal's first three characters or is a start of them). In prose, single letters that begin
    kinds ("t", "c", "f") are everywhere; their three-character starts ("too", "com", "fun") are rare. The ends
    are looked for with `str.endswith`: as a regex branch ahead of `\\Z` they were tried at every position (a
    272-character prose text took ~36 us to search, ~7 us so)."""
    heads: set[str] = set()
    for k in kinds:
        first = k.nodes[0]
        heads.update(o[:3] for o in ((first.text,) if isinstance(first, Lit) else
                                     first.options if isinstance(first, OneOf) else ()) if o)
    ends = {h[:i] for h in heads for i in range(1, len(h))}
    alternation = "|".join(re.escape(h) for h in sorted(heads, key=len, reverse=True))
    return alternation, tuple(sorted(ends, key=len, reverse=True)) or ("",)  # no ends: the empty one ends any text


_TICKS = re.compile("`+")


class Ticks(NamedTuple):  # (a named tuple: made for each piece of a stream's text, and cheaper to make)
    """Where a line's backticks leave inline code (CommonMark code spans): `open` is the length of the backtick run
    that opened the span the text is in (0: none; a span closes with a run of the same length, so ``` ``a `b` c`` ```
    is one span), `run` a run of backticks the text ends with (it may go on in the next piece), `clean` whether
    that run is all the line holds so far (a run of three or more there is a code fence, not inline code)."""

    open: int = 0
    run: int = 0
    clean: bool = True


LINE_START = Ticks()
_AFTER_TEXT = Ticks(0, 0, False)


def _applied(open_: int, run: int, clean: bool) -> int:
    """`open` after a whole run of `run` backticks."""
    if not run or (clean and run >= 3):
        return open_
    if not open_:
        return run
    return 0 if run == open_ else open_


def ticks_after(state: Ticks, text: str, start: int = 0, end: int | None = None) -> Ticks:
    """The `Ticks` after `text[start:end]`, when they were `state` at `start` (a newline starts them afresh)."""
    end = len(text) if end is None else end
    nl = text.rfind("\n", start, end)
    if text.find("`", start, end) < 0:  # the usual piece of prose
        if nl >= 0:
            return LINE_START if nl == end - 1 else _AFTER_TEXT
        if start == end or (not state.run and not state.clean):
            return state
        return Ticks(_applied(*state), 0, False)
    if nl >= 0:
        state, start = LINE_START, nl + 1
    open_, run, clean = state.open, state.run, state.clean
    i = start
    for m in _TICKS.finditer(text, start, end):
        s, e = m.span()
        if s > i:  # other text before this run: the pending run is whole
            open_, run, clean = _applied(open_, run, clean), 0, False
        run += e - s
        i = e
    if i < end:
        open_, run, clean = _applied(open_, run, clean), 0, False
    return Ticks(open_, run, clean)


def in_code(ticks: Ticks) -> bool:
    """Whether the text the `Ticks` were read from ends inside inline code (a candidate begins there: the run of
    backticks before it, if any, is whole)."""
    return _applied(*ticks) != 0


class CandidateFinder:
    """Finds candidates of a KindSet in text, resolving names with one request's declared tools."""

    def __init__(self, kinds: KindSet, resolve: Callable[[str], str | None]) -> None:
        self._set = kinds
        self._resolve = resolve
        self._regex = kinds.regex
        self._combined = kinds.combined
        self._by_first = kinds.by_first
        self._by_head = kinds.by_head
        self._wild = kinds.wild
        self._partial_by_first = kinds.partial_by_first
        self._prefilter = kinds.prefilter
        self._short_ends = kinds.short_ends
        self._quick = kinds.quick
        self._heads = kinds.quick  # (the same pattern: `_quick` answers whether to scan, this where heads are)
        self._quick_ends = kinds.quick_ends
        self.max_len = kinds.max_len

    def may_contain(self, text: str) -> bool:
        """Cheap pre-check: False means no candidate can occur in `text`."""
        return self._set.prefilter.search(text) is not None

    def _accept(self, text: str, p: int, kind: Kind, line_at: int = -1) -> bool:
        if kind.line_start and p > 0 and text[p - 1] != "\n" and p != line_at:
            return False
        m = self._regex[kind.key].match(text, p)
        if m is None:
            return False
        return not kind.named or self._resolve(m.group("name")) is not None

    def find(self, text: str, pos: int = 0, ticks: Ticks | None = None, line_at: int = -1,
             fenced: Fenced | None = None) -> tuple[int, Kind] | None:
        """The first complete candidate at or after `pos`, outside inline code (see `Ticks`; `ticks`: the line's
        backticks before `pos`, for a `text` that does not hold the line's start). `line_at`: a position that
        begins a line as a newline does (where content begins after a think block). `fenced(text, p)`: whether
        `p` lies in a fenced code block, asked for `Kind.unfenced` candidates in the text's order (None: `text`
        read from its start)."""
        hit = self._find(text, pos, ticks, line_at, False, fenced)
        return (hit[0], hit[1]) if hit is not None else None

    def _find(self, text: str, pos: int, ticks: Ticks | None, line_at: int, open_end: bool,
              fenced: Fenced | None = None) -> tuple[int, Kind, bool] | None:
        """`find`; with `open_end` (a stream: more text may follow) a candidate whose kind is decided by its line,
        that line not yet ended, comes with True (it may still become a call, or not)."""
        search = self._combined.search
        by_head, wild = self._by_head, self._wild
        at = pos  # `ticks` is the line's backticks before `at`, carried forward (each read once: a line of many
        if ticks is None:  # quoted examples was read again from its start for each, a 168 KB line took 20 s)
            ticks, at = LINE_START, text.rfind("\n", 0, pos) + 1
        while True:
            m = search(text, pos)
            if m is None:
                return None
            p = m.start()
            kinds = by_head.get(text[p:p + HEAD])
            for kind in kinds if kinds is not None else wild.get(text[p], ()):
                if self._accept(text, p, kind, line_at):
                    ticks, at = ticks_after(ticks, text, at, p), p
                    if in_code(ticks):
                        break
                    if kind.unfenced:
                        if fenced is None:  # (read from `text`'s start, once for the candidates of this search)
                            fenced = Fences().inside
                        if fenced(text, p):
                            continue
                    check = kind.line_check
                    if check is not None:
                        nl = text.find("\n", p, p + LINE_HOLD + 1) if open_end else text.find("\n", p)
                        if nl == -1 and open_end:
                            if len(text) - p <= LINE_HOLD:
                                return p, kind, True
                        elif not check(text, p, nl if nl != -1 else len(text)):
                            continue  # (the handler would refuse it)
                    return p, kind, False
            pos = p + 1

    # --- streaming ---------------------------------------------------------------------------------------------

    def first_head(self, text: str) -> int:
        """Where the first head in `text` begins (see `_quick_parts`): no candidate, complete or partial, begins
        before it. len(text) when there is none but the text ends with a start of one; -1 when there is neither:
        nothing can begin anywhere in `text` (`nothing_begins`)."""
        m = self._quick.search(text)
        if m is not None:
            return m.start()
        return len(text) if text.endswith(self._quick_ends) else -1

    def nothing_begins(self, text: str) -> bool:
        """True when no candidate, complete or partial, can begin anywhere in `text` (see `_quick_parts`):
        `scan_stream(context + text, len(context))` is then (NO, its length) whatever the context."""
        return self.first_head(text) == -1

    def scan_stream(self, text: str, start: int, ticks: Ticks | None = None,
                    fenced: Fenced | None = None, head: int | None = None) -> tuple[int, int]:
        """(status, position) for streaming: the first position >= start that is a complete candidate (MATCH)
        or may still become one (PARTIAL); (NO, len(text)) when there is none. `ticks` and `fenced` as for `find`
        (a stream's `fenced` reads the text before `text` too). `head`: where `first_head` found the first head of
        `text[start:]` (offset by `start`; not -1), when it was asked already."""
        if head is None:
            m = self._quick.search(text, start)
            head = m.start() if m is not None else len(text)
            if m is None and not text.endswith(self._quick_ends, start):  # the usual prose
                return NO, len(text)
        if head > start and ticks is not None:  # (no candidate begins before the first head: none is looked for)
            ticks = ticks_after(ticks, text, start, head)
        hit = self._find(text, head, ticks, -1, True, fenced)
        stop = hit[0] if hit is not None else len(text)
        # a partial candidate is non-empty, runs to the end and begins with a kind's first literal: it holds that
        # literal's first three characters (a head), or it is a shorter start of them ending the text: only those
        # positions are tried, each with its own kinds' pattern (the same answer as KindSet.partial.search)
        end = len(text)
        by_first = self._partial_by_first
        low = max(start, end - self.max_len)
        search = self._heads.search
        m = self._heads.match(text, head) if head >= low else None  # (the first head, found: no search)
        if m is None:
            m = search(text, max(head, low))
        # each head in turn, overlapping ones too (a search from the next position: a lookahead found at every
        # position was tried there with every head, 24 us for a 272-character prose text, 7 so)
        while m is not None:
            p = m.start()
            if p >= stop or p >= end - 2:  # (the last two positions: below, once each)
                break
            reach, pattern = by_first[text[p]]
            if end - p <= reach and pattern.match(text, p) is not None:
                return PARTIAL, p
            m = search(text, p + 1)
        for p in range(max(low, end - 2), min(stop, end)):
            if text[p:] in self._short_ends or self._heads.match(text, p) is not None:
                reach, pattern = by_first[text[p]]
                if end - p <= reach and pattern.match(text, p) is not None:
                    return PARTIAL, p
        if hit is not None:
            return (PARTIAL if hit[2] else MATCH), hit[0]
        return NO, len(text)
