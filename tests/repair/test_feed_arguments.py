"""`StreamRepairer.feed_arguments(i, text)` is `feed_tool_calls([{"index": i, "function": {"arguments": text}}])`:
the same events, result and after-header issues for any native call stream, split anywhere, whatever the options
(incremental or not, tool_choice, parallel calls, the size bound)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.repair.helpers import run_stream

ARGS = [
    {"path": "/etc/hosts"}, {"path": "a.py", "limit": 10}, {"path": "a.py", "limit": "10"}, {"path": 3},
    {"command": "ls -la", "timeout": 2.5}, {"query": "x", "filters": {"lang": "py", "max": "4"}, "tags": ["a"]},
    {"location": "Paris", "unit": "kelvin"}, {}, {"path": "a*b", "depth": -1}, {"path": "é \u2028 \"q\" \\ \n"},
]
NAMES = ["read_file", "run_shell", "search", "get_weather", "list_dir", "get_time", "nope", "write_file"]


def _text(args: dict[str, Any], spaced: bool, broken: int) -> str:
    text = json.dumps(args) if spaced else json.dumps(args, separators=(",", ":"))
    return text[:len(text) - broken] + ("}}" if broken % 2 else "") if broken else text


@st.composite
def native_stream(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """(kind, payload) steps: ("call", a tool-call delta) or ("args", (index, piece)), with content between."""
    steps: list[tuple[str, Any]] = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        if draw(st.booleans()):
            steps.append(("content", draw(st.sampled_from(["Sure.", " ", "I'll call it.\n", ""]))))
        name = draw(st.sampled_from(NAMES))
        header: dict[str, Any] = {"index": index, "type": "function", "function": {"name": name}}
        if draw(st.booleans()):
            header["id"] = draw(st.sampled_from(["call_a", "call_b", ""]))
        if draw(st.booleans()):
            header["function"]["arguments"] = ""
        steps.append(("call", header))
        text = _text(draw(st.sampled_from(ARGS)), draw(st.booleans()), draw(st.integers(min_value=0, max_value=3)))
        cuts = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=12))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        for piece in pieces:
            steps.append(("args", (index, piece)))
    return steps


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(native_stream(), st.booleans(), st.sampled_from([None, "auto", "required", "none",
                                                          {"type": "function", "function": {"name": "read_file"}}]),
       st.booleans(), st.sampled_from([None, 12, 40, 10_000]))
def test_feed_arguments_is_feed_tool_calls_of_that_delta(steps: list[tuple[str, Any]], incremental: bool,
                                                         tool_choice: Any, parallel: bool, max_chars: int | None,
                                                         ) -> None:
    opts = {"incremental": incremental, "tool_choice": tool_choice, "parallel_tool_calls": parallel,
            "max_chars": max_chars}
    assert run_stream(steps, opts) == run_stream(steps, opts, direct=False)
