"""`StreamRepairer.finish` without the one-shot repair when no candidate begins in the text and the upstream's
structured calls need no repair (`_clean_calls`), and a native call's argument piece inside a string value passed
on as it came (`incremental.string_run`): the same events, result and after-header issues as the general path
(the one-shot `repair_message` over the whole answer; the argument reader and emitter piece by piece), for any
call stream split anywhere, whatever the options."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import repair.stream as stream_mod
from repair import StreamRepairer
from tests.repair.corpus import TOOLS
from tests.repair.helpers import ids, run_stream
from tests.repair.test_feed_arguments import ARGS

NAMES = ["read_file", "read_file", "run_shell", "search", "get_weather", "get_time", "write_file", "Read_File",
         "nope", ""]
EXTRA = [{"path": "a/b\\c \"d\" \t\b\f\r\n é 日本 \u2028 \x01 \x7f"}, {"command": "x" * 40, "timeout": 3},
         {"path": "a.py", "content": "line one\nline two\n\ttabbed \"quoted\" \\ back"}, {"path": "😀 \ud7ff"}]
CLEAN = [("read_file", {"path": "src/jobs/queue.py", "limit": 40}), ("read_file", EXTRA[0]), ("read_file", EXTRA[3]),
         ("write_file", EXTRA[2]), ("run_shell", {"command": "pytest -q\ttests/", "timeout": 2.5}),
         ("search", {"query": "backoff", "filters": {"lang": "py", "max": 4}, "tags": ["a", "b"]}),
         ("get_weather", {"location": "Paris"}), ("get_time", {})]


def _text(args: dict[str, Any], style: int, broken: int) -> str:
    text = [json.dumps(args), json.dumps(args, separators=(",", ":")), json.dumps(args, ensure_ascii=False),
            json.dumps(args).replace("/", "\\/"), " " + json.dumps(args, indent=1) + "\n",
            json.dumps(args, ensure_ascii=False).replace("\\t", "\t").replace("\\u0001", "\x01")][style]
    return text[:len(text) - broken] + ("}}" if broken % 2 else "") if broken else text


@st.composite
def call_stream(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """(kind, payload) steps: plain content and reasoning now and then, and 1-3 native calls (header delta, then
    argument pieces cut anywhere; now and then an arguments object or a piece in the header)."""
    steps: list[tuple[str, Any]] = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(["content", "content", "reasoning"])),
                          draw(st.sampled_from(["Sure.", " ", "I'll call it.\n", "", "Now the backoff. "]))))
        name, args = draw(st.sampled_from(CLEAN)) if draw(st.integers(0, 2)) else \
            (draw(st.sampled_from(NAMES)), draw(st.sampled_from(ARGS + EXTRA)))
        header: dict[str, Any] = {"index": index, "type": "function", "function": {"name": name}}
        if draw(st.integers(0, 3)):
            header["id"] = draw(st.sampled_from(["call_a", "call_a", "call_b", "", "call_1"]))
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            header["function"]["arguments"] = args
            steps.append(("call", header))
            continue
        if draw(st.booleans()):
            header["function"]["arguments"] = ""
        steps.append(("call", header))
        text = _text(args, draw(st.sampled_from([0, 1, 2, 3, 4, 5, 5])),
                     draw(st.sampled_from([0, 0, 0, 0, 0, 1, 2, 3])))
        cuts = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=14))))
        for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
            steps.append(("args", (index, text[a:b])))
    return steps


OPTIONS = [st.booleans(), st.sampled_from([None, "auto", "required", "none",
                                           {"type": "function", "function": {"name": "read_file"}},
                                           {"type": "function", "function": {"name": "READ_FILE"}}]),
           st.booleans(), st.sampled_from(["repair", "detect"]), st.sampled_from(["auto", "hermes", "json"]),
           st.sampled_from([None, 12, 10_000]), st.booleans()]


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call_stream(), *OPTIONS)
def test_clean_calls_finish_as_the_one_shot_repair_would(steps: list[tuple[str, Any]], incremental: bool,
                                                         tool_choice: Any, parallel: bool, mode: str, fmt: str,
                                                         max_chars: int | None, direct: bool) -> None:
    opts = {"incremental": incremental, "tool_choice": tool_choice, "parallel_tool_calls": parallel, "mode": mode,
            "format": fmt, "max_chars": max_chars}
    assert run_stream(steps, opts, direct=direct) == run_stream(steps, opts, direct=direct, one_shot=True)


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call_stream(), *OPTIONS)
def test_string_runs_stream_as_the_reader_and_emitter_would(steps: list[tuple[str, Any]], incremental: bool,
                                                            tool_choice: Any, parallel: bool, mode: str, fmt: str,
                                                            max_chars: int | None, direct: bool) -> None:
    opts = {"incremental": incremental, "tool_choice": tool_choice, "parallel_tool_calls": parallel, "mode": mode,
            "format": fmt, "max_chars": max_chars}
    fast = run_stream(steps, opts, direct=direct)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stream_mod, "string_run", lambda *_: False)
        assert fast == run_stream(steps, opts, direct=direct)


def test_a_clean_call_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = stream_mod.repair_message
    monkeypatch.setattr(stream_mod, "repair_message", lambda *a, **k: calls.append(a) or real(*a, **k))
    sr = StreamRepairer(TOOLS, incremental=True, id_factory=ids)
    sr.feed("Reading it. ")
    sr.feed_tool_calls([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "read_file"}}])
    pieces = ['{"path": "src/a', ' b\\n\\"c', '\\"", "limit": 5}']
    events = [e for p in pieces for e in sr.feed_arguments(0, p)] + sr.finish()
    assert "".join(e.text for e in events if type(e).__name__ == "ToolArgsDelta") == \
        '{"path": "src/a b\\n\\"c\\"", "limit": 5}'
    assert sr.result.content == "Reading it. " and sr.result.tool_calls[0]["id"] == "call_a" and not calls
    sr = StreamRepairer(TOOLS, incremental=True)  # coerced: the one-shot repair decides (and reports it)
    sr.feed_tool_calls([{"index": 0, "type": "function", "function": {"name": "read_file", "arguments": ""}}])
    sr.feed_arguments(0, '{"path": "a", "limit": "5"}')
    sr.finish()
    assert len(calls) == 1 and [r.kind for r in sr.result.repairs] == ["coerced_type"]


@pytest.mark.parametrize("pieces", [
    ['{"path": "a', "\tb\x01c", '"}'], ['{"path": "a', "b\\/c", '"}'], ['{"path": "a', "b\\u00e9", '"}'],
    ['{"path": "a', "b\\", 'nc"}'], ['{"path": "a', "b\\ud83d", "\\ude00", '"}'],
    ['{"path": "a', "b\\ud83d", "xyz", '"}'], ['{"path": "a', 'b", "limit": 3}'],
    ['{"path": "a', "b\\n\\\"c\\\\d\\b\\f\\r\\t é 日本 \x7f", '"}'],
])
def test_string_runs_only_what_reencodes_as_written(pieces: list[str]) -> None:
    steps: list[tuple[str, Any]] = [("call", {"index": 0, "id": "call_a", "type": "function",
                                               "function": {"name": "read_file"}})]
    steps += [("args", (0, p)) for p in pieces]
    fast = run_stream(steps, {"incremental": True})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stream_mod, "string_run", lambda *_: False)
        assert fast == run_stream(steps, {"incremental": True})


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("call_ids", [("call_a", "call_a", "call_1"), ("call_1", "", "call_1"), ("", "", "")])
def test_clean_calls_ids_as_the_one_shot_repair_gives_them(incremental: bool, call_ids: tuple[str, ...]) -> None:
    steps: list[tuple[str, Any]] = []
    for i, call_id in enumerate(call_ids):
        steps.append(("call", {"index": i, "id": call_id, "type": "function", "function": {"name": "get_time"}}))
        steps.append(("args", (i, "{}")))
    opts = {"incremental": incremental}
    assert run_stream(steps, opts) == run_stream(steps, opts, one_shot=True)
