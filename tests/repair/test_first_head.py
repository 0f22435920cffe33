"""A stream's scan starts where the quick check found the first head (`CandidateFinder.first_head`, passed on to
`scan_stream`): the same answer as the scan that looks for it itself, and as the full reference scan."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repair.markers import LINE_START, Ticks, ticks_after
from tests.repair.test_properties import _reference_scan
from tests.repair.test_quick_scan import _finders, prose

TICKS = st.builds(Ticks, st.integers(0, 3), st.integers(0, 3), st.booleans())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prose, prose, TICKS)
@example("x", "Now `call:read_file{", LINE_START)
@example("", "a `b` <tool_call>", Ticks(1, 0, False))
def test_a_scan_from_the_first_head_gives_the_same_answer(context: str, text: str, ticks: Ticks) -> None:
    window = context + text
    for finder in _finders():
        head = finder.first_head(text)
        assert (head == -1) == finder.nothing_begins(text)
        if head == -1:
            continue
        start = len(context)
        assert finder.scan_stream(window, start, ticks, head=start + head) == finder.scan_stream(window, start, ticks)
        assert finder.scan_stream(window, start, head=start + head) == _reference_scan(finder, window, start)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prose, st.integers(0, 40), TICKS)
def test_backticks_carried_to_the_head_are_those_read_there(text: str, cut: int, ticks: Ticks) -> None:
    cut = min(cut, len(text))
    assert ticks_after(ticks_after(ticks, text, 0, cut), text, cut) == ticks_after(ticks, text)
