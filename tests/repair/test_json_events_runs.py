"""`JsonEvents` reads runs at once (string text with its one-character escapes; a member's key, colon and a string
value's opening quote): fed in pieces it gives, piece by piece, the events it gives when each piece is fed one
character at a time (where no run can be read at once), text events joined; and the same JsonBroken and `done`.
So everything built on it (the argument emitter, the hermes reader) sees the same thing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair.incremental import CHARS, ArgsEmitter, JsonBroken, JsonEvents

values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab "\\/\n\t\x01é日\U0001f600\ud800:,{}[]'), max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet=st.sampled_from('ab "\\\n:,é\U0001f600'), max_size=6), inner, max_size=4),
    max_leaves=12)


INDENTS: list[int | str] = [1, "\t", " \r\n "]

# the strategies `texts` draws from, built once (a strategy built inside the composite is built and validated again
# for every draw, which cost more than the test itself)
TOP = st.one_of(values, st.dictionaries(st.text(alphabet=st.sampled_from('ab "\\\n:,é'), max_size=6), values,
                                        min_size=1, max_size=4))
STYLES = st.sampled_from(["compact", "spaced", "ascii", "wide"])
INDENT = st.sampled_from(INDENTS)
BREAKS = st.sampled_from(["", "x", '"', "\\", "\\u12", ",", ":", "}", "]", " ", "\\q", ' "', " x", " ]"])
TAILS = st.sampled_from(["", " ", " trailing", "\n{}"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    value = draw(TOP)
    style = draw(STYLES)
    if style == "compact":
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    elif style == "spaced":
        text = json.dumps(value, ensure_ascii=False)
    elif style == "ascii":
        text = json.dumps(value)
    else:
        text = json.dumps(value, indent=draw(INDENT), ensure_ascii=False)
    if draw(st.booleans()):  # broken on purpose: cut, or a character changed, often right after punctuation
        marks = [k + 1 for k, c in enumerate(text) if c in ':,"{[']
        at = draw(st.integers(0, len(text)))
        if marks and draw(st.integers(0, 3)) > 0:
            at = marks[draw(st.integers(0, len(marks) - 1))]
        text = text[:at] + draw(BREAKS) + (text[at + 1:] if draw(st.booleans()) else "")
    return text + draw(TAILS)


def _joined(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if ev[0] == CHARS and out and out[-1][0] == CHARS:
            out[-1] = (CHARS, out[-1][1] + ev[1])
        else:
            out.append(ev)
    return out


def _run(pieces: list[str], by_char: bool) -> list[Any]:
    reader = JsonEvents()
    got: list[Any] = []
    for piece in pieces:
        try:
            if by_char:
                events: list[tuple[Any, ...]] = []
                for c in piece:
                    events += reader.feed(c)
                    if reader.done:
                        break
            else:
                events = reader.feed(piece)
        except JsonBroken:
            got.append("broken")
            return got
        got.append((_joined(events), reader.done))
        if reader.done:
            return got
    return got


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts(), st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_runs_read_at_once_give_the_events_of_one_character_at_a_time(text: str, sizes: list[int]) -> None:
    pieces, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        pieces.append(text[i:i + n])
        i, k = i + n, k + 1
    assert _run(pieces, False) == _run(pieces, True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=5), st.integers(1, 30))
def test_the_emitter_gives_the_same_pieces(value: dict[str, Any], size: int) -> None:
    text = json.dumps(value, ensure_ascii=False)
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    outs = []
    for by_char in (False, True):
        reader, emitter = JsonEvents(), ArgsEmitter(None)
        got = []
        for piece in pieces:
            events = [ev for c in piece for ev in reader.feed(c)] if by_char else reader.feed(piece)
            got.append(emitter.feed(events))
        outs.append(got)
    assert outs[0] == outs[1]
    assert "".join(outs[0]) == json.dumps(value, ensure_ascii=False)


def test_a_key_and_an_escaped_run_are_read_at_once() -> None:
    reader = JsonEvents()
    assert reader.feed('{"path": "a\\nb\\"c", "n') == [(0,), (4, "path"), (5,), (6, 'a\nb"c'), (7,)]
    assert reader.feed('ame" :  "x"}') == [(4, "name"), (5,), (6, "x"), (7,), (1,)]
