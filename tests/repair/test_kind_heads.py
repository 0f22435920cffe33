"""At a position where a candidate may begin, the finder tries only the kinds whose first literal's first characters
are there (`KindSet.by_head`; those whose literal is shorter, `wild`, always): at each `<` of prose all 49 kinds
beginning with `<` were tried, and 2 KB of prose with `<tags>` took ~300 us to repair, 27 us before the tool_tags
kind (`<` and a name) made every `<word>` a place to look. The narrowing must never leave out a kind that matches:
for every kind of every set, at every option of its first literal (with what may follow it), the kinds tried there
hold every kind whose pattern matches, in the same order as before."""

from __future__ import annotations

import re

import pytest

from repair.core import ALL_KINDS, INSIDE_THINK, NATIVE_ONLY
from repair.markers import HEAD, KindSet, Lit, OneOf, kind_regex

SETS = {"all": ALL_KINDS, "native": NATIVE_ONLY, "inside think": INSIDE_THINK}
FOLLOW = ["", " ", "\n", "x", "read_file>", "read_file(", '{"name": "read_file"}', " name=\"read_file\">", ":", "|"]


def _options(kinds: KindSet) -> set[str]:
    out: set[str] = set()
    for k in kinds.kinds:
        first = k.nodes[0]
        out.update((first.text,) if isinstance(first, Lit) else first.options if isinstance(first, OneOf) else ())
    return out


def tried(kinds: KindSet, text: str, p: int) -> tuple[str, ...]:
    chosen = kinds.by_head.get(text[p:p + HEAD])
    return tuple(k.key for k in (chosen if chosen is not None else kinds.wild.get(text[p], ())))


@pytest.mark.parametrize("name", list(SETS))
def test_the_kinds_tried_hold_every_kind_that_matches(name: str) -> None:
    kinds = SETS[name]
    patterns = {k.key: re.compile(kind_regex(k)) for k in kinds.kinds}
    checked = 0
    for option in sorted(_options(kinds)):
        for follow in FOLLOW:
            for text in (option + follow, option[:HEAD - 1], option[:1]):
                matching = [k.key for k in kinds.by_first.get(text[0], ()) if patterns[k.key].match(text)]
                got = tried(kinds, text, 0)
                assert [k for k in got if k in matching] == matching, (text, got)
                full = [k.key for k in kinds.by_first.get(text[0], ())]
                assert [k for k in full if k in got] == list(got)  # (by_first's order)
                checked += 1
    assert checked > 500


def test_a_tag_in_prose_tries_only_the_kinds_beginning_with_a_bare_bracket() -> None:
    assert tried(ALL_KINDS, "<tags>", 0) == ("tool_tags",)
    assert "hermes" in tried(ALL_KINDS, "<tool_call>", 0) and "tool_tags" in tried(ALL_KINDS, "<tool_call>", 0)
