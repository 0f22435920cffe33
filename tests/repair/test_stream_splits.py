"""Every output of the regression corpus (peers' parser tests and bug reports), streamed as an upstream streams
it: pieces of a few characters cut anywhere (inside a tag, an escape, between `<` and `tool_call>`), one character
at a time, or a few large pieces. The client's answer (calls, their names, their arguments as JSON, the content
less whitespace at its edges, the reasoning) is the one-shot answer, with and without incremental calls, with the
router's options (`keep_failed_calls`, the configured family)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair import FAMILIES, family_for_parser_type, repair_message
from tests.repair.helpers import ids, stream
from tests.repair.incremental_helpers import stream_incremental
from tests.repair.regression import Case, load

CASES = [c for c in load() if c.text]
Answer = tuple[str, str, list[tuple[str, Any]]]


def _family(case: Case) -> str | None:
    return case.family if case.family in FAMILIES else family_for_parser_type(case.family)


@st.composite
def pieces(draw: st.DrawFn, text: str) -> list[str]:
    """`text` cut into pieces: each of 1 to `most` characters, or (most 0) at a few random points."""
    most = draw(st.sampled_from([1, 2, 3, 5, 8, 0]))
    if most == 0:
        cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=4)))
        bounds = [0, *(c for c in cuts if c < len(text)), len(text)]
        return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    out, i = [], 0
    while i < len(text):
        n = draw(st.integers(min_value=1, max_value=most))
        out.append(text[i:i + n])
        i += n
    return out


def _one_shot(case: Case, opts: dict[str, Any]) -> Answer:
    r = repair_message(case.text, case.tools, id_factory=ids, **opts)
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in r.tool_calls]
    return (r.content or "").strip(), (r.reasoning_content or "").strip(), calls


def _streamed(case: Case, chunks: list[str], incremental: bool, opts: dict[str, Any]) -> Answer:
    if not incremental:
        _, content, reasoning, deltas = stream(chunks, case.tools, **opts)
        return content.strip(), reasoning.strip(), [(d.name, json.loads(d.arguments)) for d in deltas]
    sr, got = stream_incremental(chunks, case.tools, **opts)
    assert not sr.after_header, sr.after_header  # no call went out that the one-shot answer lacks
    return got.content.strip(), got.reasoning.strip(), [(n, json.loads(a)) for _, n, a in got.call_list()]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(CASES), st.data(), st.booleans(), st.booleans(), st.booleans())
def test_any_split_gives_the_one_shot_answer(case: Case, data: st.DataObject, incremental: bool, keep_failed: bool,
                                             configured: bool) -> None:
    opts: dict[str, Any] = {"keep_failed_calls": keep_failed}
    family = _family(case)
    if configured and family is not None:
        opts["format"] = family
    chunks = data.draw(pieces(case.text))
    assert "".join(chunks) == case.text
    assert _streamed(case, chunks, incremental, opts) == _one_shot(case, opts), chunks
