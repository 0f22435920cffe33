"""A structured call's argument pieces are kept as pieces and joined once at the end: the stream's result is the
one-shot repair of the call with its arguments joined, however they were split; an arguments object replaces the
text before it, and text after an object starts over."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair import StreamRepairer, repair_message
from tests.repair.corpus import TOOLS
from tests.repair.helpers import ids
from tests.repair.test_feed_arguments import ARGS, NAMES, _text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NAMES), st.sampled_from(ARGS), st.booleans(), st.integers(0, 3),
       st.lists(st.integers(0, 200), max_size=12), st.booleans(), st.booleans())
def test_pieces_join_to_the_one_shot_calls_arguments(name: str, args: dict[str, Any], spaced: bool, broken: int,
                                                     cuts: list[int], direct: bool, incremental: bool) -> None:
    text = _text(args, spaced, broken)
    at = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *at], [*at, len(text)], strict=True)]
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=incremental)
    sr.feed_tool_calls([{"index": 0, "id": "call_a", "type": "function", "function": {"name": name}}])
    for piece in pieces:
        if direct:
            sr.feed_arguments(0, piece)
        else:
            sr.feed_tool_calls([{"index": 0, "function": {"arguments": piece}}])
    sr.finish()
    one_shot = repair_message(None, TOOLS, tool_calls=[{"id": "call_a", "type": "function",
                                                        "function": {"name": name, "arguments": text}}],
                              id_factory=ids, canonical=incremental)
    assert sr.result == one_shot


def _result(deltas: list[Any]) -> Any:
    sr = StreamRepairer(TOOLS, id_factory=ids)
    sr.feed_tool_calls([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "read_file"}}])
    for d in deltas:
        sr.feed_tool_calls([{"index": 0, "function": {"arguments": d}}])
    sr.finish()
    return sr.result.tool_calls[0]["function"]["arguments"] if sr.result.tool_calls else None


def test_an_object_replaces_the_text_and_text_after_it_starts_over() -> None:
    assert json.loads(_result(['{"path": "x', {"path": "b.py"}])) == {"path": "b.py"}
    assert json.loads(_result([{"path": "b.py"}, '{"path": ', '"c.py"}'])) == {"path": "c.py"}
