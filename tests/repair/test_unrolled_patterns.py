"""The JSON-string patterns written unrolled (`"[^"\\]*(?:\\.[^"\\]*)*"`, no branch per character) match exactly
what the plain alternation (`"(?:[^"\\]|\\.)*"`) matches, wherever they start."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from repair import salvage
from router import relay

_TEXT = st.lists(st.sampled_from(['"', "\\", "a", "\n", " ", "é", "u"]), max_size=24).map("".join)


@settings(max_examples=2000, deadline=None)
@given(_TEXT, st.integers(0, 24))
def test_the_unrolled_patterns_match_what_the_alternations_match(text: str, start: int) -> None:
    plain = re.compile(rb'"(?:[^"\\]|\\.)*"')
    data = text.encode()
    start = min(start, len(data))
    a, b = plain.match(data, start), relay._JSON_STRING.match(data, start)
    assert (a and a.span()) == (b and b.span())
    source = re.compile(r'"((?:[^"\\]|\\[\s\S])*)"')
    assert [m.span(1) for m in source.finditer(text)] == [m.span(1) for m in salvage._SRC_STRING.finditer(text)]
