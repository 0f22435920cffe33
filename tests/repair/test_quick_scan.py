"""The streaming scan's quick path (`KindSet.quick`: where nothing can begin, no scan) against the full scan: the
same answer for every text, and the same stream events however a corpus output is split."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repair import StreamRepairer
from repair.core import ALL_KINDS, INSIDE_THINK, NATIVE_ONLY
from repair.index import ToolIndex
from repair.markers import CandidateFinder
from tests.repair.corpus import TOOLS
from tests.repair.helpers import ids
from tests.repair.regression import load
from tests.repair.test_properties import FRAGMENTS, _reference_scan

WORDS = ["the", "to", "tool", "too", "call", "com", "commentary", "function", "functools", "fun", "Tool", "TOOL",
         "c", "t", "f", "T", "co", "fu", "To", "[", "{", "`", "<", "<t", "<|", "tool_code", "call:", "to=", " ", "\n",
         ".", ",", "job", "retry", "queue", "which", "is", "why", "after"]
prose = st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(FRAGMENTS), st.text(max_size=4)),
                 max_size=40).map("".join)
EVERYWHERE = re.compile("")  # the quick check turned off: every position may begin something


def _finders() -> list[CandidateFinder]:
    index = ToolIndex.of(TOOLS)
    return [CandidateFinder(kinds, index.resolve) for kinds in (ALL_KINDS, NATIVE_ONLY, INSIDE_THINK)]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prose, st.integers(min_value=0, max_value=40))
@example('call:read_file{"name": "read_file"', 0)  # a line-decided candidate, its line open: partial at 0
def test_the_quick_path_gives_the_full_scans_answer(text: str, start: int) -> None:
    start = min(start, len(text))
    for finder in _finders():
        for s in {0, start}:
            assert finder.scan_stream(text, s) == _reference_scan(finder, text, s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prose, prose)
def test_nothing_begins_means_the_scan_finds_nothing(context: str, text: str) -> None:
    from repair.markers import NO

    for finder in _finders():
        if finder.nothing_begins(text):
            assert _reference_scan(finder, context + text, len(context)) == (NO, len(context + text))


def test_the_quick_path_skips_plain_prose() -> None:
    index = ToolIndex.of(TOOLS)
    for kinds in (ALL_KINDS, NATIVE_ONLY, INSIDE_THINK):
        finder = CandidateFinder(kinds, index.resolve)
        assert finder.nothing_begins(" after the third attempt, which is why the job vanishes.")
        assert not finder.nothing_begins("a <")
    finder = CandidateFinder(ALL_KINDS, index.resolve)
    for text in ("a tool", "ends with t", "ends with co", "[x", "{", "commentary"):
        assert not finder.nothing_begins(text)
    assert finder.scan_stream("ends with\nt", 3)[0] != 0 and finder.scan_stream("a t.", 2) == (0, 4)
    assert finder.scan_stream("ends with t", 3) == (0, 11)  # "Tool call:" is a call only at a line start


def _events(chunks: list[str], tools: Any, quick: bool, **opts: Any) -> list[Any]:
    sr = StreamRepairer(tools, id_factory=ids, **opts)
    if not quick:
        for finder in (sr._finder, sr._inner_finder):
            finder._quick = EVERYWHERE
    events: list[Any] = []
    for c in chunks:
        events += sr.feed(c)
    events += sr.finish()
    return [*events, sr.result, sr.after_header]


def _splits(text: str, rng: random.Random) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.choice((1, 1, 2, 3, 5, 8, 16, 40))
        out.append(text[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("incremental", [False, True])
def test_stream_events_are_the_same_with_and_without_the_quick_path(incremental: bool) -> None:
    rng = random.Random(16)
    cases = load()
    assert len(cases) > 100
    for case in cases:
        chunks = _splits(case.text, rng)
        assert _events(chunks, case.tools, True, incremental=incremental) == \
            _events(chunks, case.tools, False, incremental=incremental), case.id
