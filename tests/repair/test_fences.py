"""Fenced code blocks, read along the text once (`repair.fences`): what a candidate inside one is (text), that
reading in pieces gives what reading whole gives, and that a text of many fenced candidates is read once, not from
its start for each."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import repair.fences as fences_mod
from repair import repair_message
from repair.fences import TEXT_START, Fences, fence_after, fenced
from repair.stream import StreamRepairer
from tests.repair.helpers import assert_stream_matches, calls_of, stream

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
TAG_LINES = "<read_file>\n<path>src/main.py</path>\n</read_file>\n"
STRIPPED_LINE = "call:read_file{path:src/main.py}\n"

_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)", re.MULTILINE)


def reference(text: str, p: int) -> bool:
    """Whether `p` is in a fenced block, every fence line before it read again (what the state must equal)."""
    fence = ""
    for m in _FENCE_LINE.finditer(text, 0, p):
        run, rest = m.group(1), m.group(2)
        if not fence:
            if run[0] == "~" or "`" not in rest:
                fence = run
        elif run[0] == fence[0] and len(run) >= len(fence) and not rest.strip(" \t"):
            fence = ""
    return bool(fence)


@given(st.text(alphabet="`~ \tx\n", max_size=60), st.lists(st.integers(0, 60), max_size=6))
def test_read_in_pieces_reads_as_whole(text: str, cuts: list[int]) -> None:
    """Wherever the pieces are cut (inside a run, an indent or an info string), the state is the one reading the
    whole text gives, and at every position it answers what reading every fence line before it answers."""
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    state = TEXT_START
    for a, b in pairwise(bounds):
        state = fence_after(state, text[a:b])
    assert state == fence_after(TEXT_START, text)
    memo = Fences()
    for p in range(len(text) + 1):
        assert fenced(fence_after(TEXT_START, text, 0, p)) == reference(text, p), p
        assert memo.inside(text, p) == reference(text, p), p


def test_a_question_behind_the_last_one_reads_again() -> None:
    text = "```\nx\n```\ny\n"
    memo = Fences()
    assert memo.inside(text, text.index("y")) is False
    assert memo.inside(text, 4) is True


@pytest.mark.parametrize("text", [
    "```\n" + TAG_LINES + "```\n" + TAG_LINES,
    "  ~~~~ xml\n" + TAG_LINES + "~~~\n" + TAG_LINES + "~~~~~\n" + TAG_LINES + "Done.",
    "``` a`b\n" + TAG_LINES,
    "Before.\n````\n```\n" + STRIPPED_LINE + "````\n" + STRIPPED_LINE,
])
def test_a_candidate_after_a_fence_closes_is_a_call_and_one_inside_is_text(text: str) -> None:
    r = repair_message(text, TOOLS)
    assert calls_of(r) == [("read_file", {"path": "src/main.py"})]
    assert_stream_matches(text, TOOLS)


def _text(unit: str, n: int = 200_000) -> str:
    return "```\n" + (unit * (n // len(unit) + 1))[:n] + "```\n"


class _Reads:
    """Characters the fence state is read over (`fence_after`) and the stream's text joined (`_text_since`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fence = 0
        self.joined = 0
        real_after, real_since = fences_mod.fence_after, StreamRepairer._text_since

        def after(state: Any, text: str, start: int = 0, end: int | None = None) -> Any:
            self.fence += (len(text) if end is None else end) - start
            return real_after(state, text, start, end)

        def since(sr: StreamRepairer, start: int) -> str:
            got = real_since(sr, start)
            self.joined += len(got)
            return got
        monkeypatch.setattr(fences_mod, "fence_after", after)
        monkeypatch.setattr(StreamRepairer, "_text_since", since)


@pytest.mark.parametrize("unit", [TAG_LINES, STRIPPED_LINE], ids=["tool_tags", "gemma4_stripped"])
def test_200_kb_of_fenced_candidates_is_text_read_once(unit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line a candidate, all inside one fence: no call, and the fence state is read along the text once (each
    candidate used to read the text before it again: seconds for 200 KB)."""
    text = _text(unit)
    reads = _Reads(monkeypatch)
    r = repair_message(text, TOOLS)
    assert r.tool_calls == [] and r.errors == [] and r.content == text
    assert reads.fence <= len(text)


@pytest.mark.parametrize("unit", [TAG_LINES, STRIPPED_LINE], ids=["tool_tags", "gemma4_stripped"])
def test_200_kb_of_fenced_candidates_streamed_in_small_pieces_is_read_once(
        unit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same streamed 16 characters at a time: each piece's window is read along once, and the text before it
    once in all (the stream joined the text before each window and read it from the start for each candidate)."""
    text = _text(unit)
    reads = _Reads(monkeypatch)
    result, content, _, calls = stream([text[i:i + 16] for i in range(0, len(text), 16)], TOOLS)
    assert result.tool_calls == [] and calls == [] and content == text
    # what was read at the stream's finish (the one-shot repair of the whole) is one length; the windows are the
    # pieces and the candidate each holds back (a line at most), each read a few times
    assert reads.fence + reads.joined <= 8 * len(text)
