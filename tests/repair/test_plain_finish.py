"""`StreamRepairer.finish` without the one-shot repair when no candidate can begin anywhere in the text (every
piece passed `nothing_begins`), no upstream calls came and tool_choice asks for none: the same events, result and
after-header issues as with `repair_message` run over the whole text, for any stream split anywhere, whatever the
options."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import repair.stream as stream_mod
from repair import StreamRepairer
from tests.repair.corpus import TOOLS
from tests.repair.helpers import run_stream
from tests.repair.regression import load
from tests.repair.test_properties import FRAGMENTS
from tests.repair.test_quick_scan import WORDS

PLAIN = ["The queue", " retries", " a failed job", " immediately,", " which is why", " the test", " fails.", "\n",
         "\n\n", "  ", "", "é 日本", " ok", "\t", "Done."]
piece = st.one_of(st.sampled_from(PLAIN), st.sampled_from(PLAIN), st.sampled_from(WORDS), st.sampled_from(FRAGMENTS),
                  st.text(max_size=3))


@st.composite
def text_stream(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """(kind, payload) steps: mostly content pieces (plain prose, words that begin markers, marker fragments),
    now and then reasoning or a native tool-call delta."""
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=14))):
        kind = draw(st.sampled_from(["content"] * 8 + ["reasoning", "call"]))
        if kind == "call":
            steps.append(("call", {"index": 0, "id": "call_a", "type": "function",
                                   "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}))
        else:
            steps.append((kind, draw(piece)))
    return steps


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_stream(), st.booleans(), st.sampled_from([None, "auto", "required", "none",
                                                       {"type": "function", "function": {"name": "read_file"}}]),
       st.sampled_from(["repair", "detect"]), st.sampled_from([None, 12, 10_000]))
def test_a_plain_stream_finishes_as_the_one_shot_repair_would(steps: list[tuple[str, Any]], incremental: bool,
                                                              tool_choice: Any, mode: str, max_chars: int | None,
                                                              ) -> None:
    opts = {"incremental": incremental, "tool_choice": tool_choice, "mode": mode, "max_chars": max_chars}
    assert run_stream(steps, opts) == run_stream(steps, opts, one_shot=True)


@pytest.mark.parametrize("incremental", [False, True])
def test_corpus_streams_finish_the_same(incremental: bool) -> None:
    rng = random.Random(7)
    for case in load():
        text = case.text
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.choice((1, 3, 8, 30)))))
        steps = [("content", text[a:b]) for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        opts = {"incremental": incremental}
        assert run_stream(steps, opts) == run_stream(steps, opts, one_shot=True), case.id


def test_plain_prose_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = stream_mod.repair_message
    monkeypatch.setattr(stream_mod, "repair_message", lambda *a, **k: calls.append(a) or real(*a, **k))
    sr = StreamRepairer(TOOLS, incremental=True)
    events = sr.feed("The queue retries a failed job ") + sr.feed("immediately.\n\n") + sr.finish()
    assert "".join(e.text for e in events) == "The queue retries a failed job immediately.\n\n"
    assert sr.result.content == "The queue retries a failed job immediately.\n\n" and not calls
    sr = StreamRepairer(TOOLS, incremental=True)
    sr.feed("Calling <tool_call>")
    sr.finish()
    assert len(calls) == 1  # a candidate may begin: the one-shot repair decides
