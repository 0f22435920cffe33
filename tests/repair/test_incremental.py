"""Incremental streaming (StreamRepairer(incremental=True)): reasoning and calls go out as they are generated,
and the answer a client assembles is the one-shot answer (arguments re-serialised) unless a call failed after
its header went out, which is reported."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repair import ContentDelta, ReasoningDelta, StreamRepairer, ToolCallDelta
from repair.incremental import ArgsEmitter, JsonEvents, ToolArgsDelta, ToolCallStart
from repair.index import ToolIndex
from tests.repair.corpus import ALL, TOOLS, Case
from tests.repair.helpers import chunkings, ids
from tests.repair.incremental_helpers import (
    Assembled,
    assert_incremental_matches,
    assert_sized_stream_matches,
    stream_incremental,
)
from tests.repair.test_properties import texts

WRITE = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"},
                                     "mode": {"type": "integer"}}, "required": ["path", "content"]}}}]
LONG = "line of the file\n" * 60


def _tools(case: Case) -> list[dict]:
    return TOOLS if case.tools is None else case.tools


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_case_streamed_incrementally(case: Case) -> None:
    assert_incremental_matches(case.text, _tools(case), seed=zlib.crc32(case.id.encode()), count=2, **case.opts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=30), st.booleans())
def test_incremental_agrees_with_one_shot(text: str, sizes: list[int], with_tools: bool) -> None:
    assert_sized_stream_matches(text, sizes, TOOLS if with_tools else None)


def _progress(chunks: list[str], feed: str = "text") -> tuple[list[int], StreamRepairer]:
    """Characters of the content argument out after each chunk."""
    sr = StreamRepairer(WRITE, id_factory=ids, incremental=True)
    args, out = "", []
    for ch in chunks:
        events = sr.feed(ch) if feed == "text" else sr.feed_tool_calls(ch)  # type: ignore[arg-type]
        args += "".join(e.text for e in events if isinstance(e, ToolArgsDelta))
        out.append(len(args))
    sr.finish()
    return out, sr


def test_hermes_arguments_stream_as_generated() -> None:
    text = ('<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "content": '
            + json.dumps(LONG) + ', "mode": "420"}}\n</tool_call>')
    chunks = [text[i:i + 7] for i in range(0, len(text), 7)]
    progress, sr = _progress(chunks)
    half = len(chunks) // 2
    assert progress[half] > len(json.dumps(LONG)) * 0.4  # half the argument is out halfway through
    _, got = stream_incremental(chunks, WRITE)
    assert got.order[0] == "start" and got.call_list()[0][2] == json.dumps(
        {"path": "a.txt", "content": LONG, "mode": 420}, ensure_ascii=False)  # coerced once complete
    assert not sr.after_header


def test_native_arguments_stream_as_generated() -> None:
    args = json.dumps({"path": "b", "content": LONG}, separators=(",", ":"))
    deltas = [[{"index": 0, "id": "call_x", "type": "function", "function": {"name": "write_file",
                                                                               "arguments": ""}}]]
    deltas += [[{"index": 0, "function": {"arguments": args[i:i + 9]}}] for i in range(0, len(args), 9)]
    progress, _sr = _progress(deltas, "native")  # type: ignore[arg-type]
    assert progress[len(deltas) // 2] > len(args) * 0.4
    sr2 = StreamRepairer(WRITE, id_factory=ids, incremental=True)
    events = [e for d in deltas for e in sr2.feed_tool_calls(d)] + sr2.finish()
    start = next(e for e in events if isinstance(e, ToolCallStart))
    assert (start.id, start.name) == ("call_x", "write_file")
    sent = "".join(e.text for e in events if isinstance(e, ToolArgsDelta))
    assert sent == sr2.result.tool_calls[0]["function"]["arguments"] == json.dumps(json.loads(args))


def test_think_streams_as_reasoning() -> None:
    text = "<think>\nLet me think about this carefully. " + "More thought. " * 20 + "\n</think>\n\nThe answer."
    sr = StreamRepairer(WRITE, id_factory=ids, incremental=True)
    reasoning = ""
    for i in range(0, len(text) // 2, 5):
        reasoning += "".join(e.text for e in sr.feed(text[i:i + 5]) if isinstance(e, ReasoningDelta))
    assert reasoning.startswith("Let me think") and len(reasoning) > 100
    for chunks in chunkings(text, 3):
        assert_incremental_matches(text, WRITE, seed=3)
        _, got = stream_incremental(chunks, WRITE)
        assert got.content == "The answer." and got.reasoning.endswith("More thought.")


@pytest.mark.parametrize("pieces", [
    ["<think>", "\n", "Okay", ", the user", " wants", "</think>", "\n\n", "Hello", " there"],
    ["<think>", "\nOkay, the user wants", "</think>", "\n\nHello there"],
    ["<", "think>", "Okay, the user wants", "</think>", "Hello there"],
], ids=["token by token", "tags whole", "open tag cut"])
def test_a_think_tag_that_comes_whole_streams(pieces: list[str]) -> None:
    """`<think>` as one piece (a single token in Qwen3, DeepSeek-R1, QwQ: the usual case) streams as reasoning as it
    comes: it was held with the whole answer to the end, which then came content first."""
    sr = StreamRepairer(WRITE, id_factory=ids, incremental=True)
    fed = [e for p in pieces for e in sr.feed(p)]
    assert "".join(e.text for e in fed if isinstance(e, ReasoningDelta)) == "Okay, the user wants"
    assert "".join(e.text for e in fed if isinstance(e, ContentDelta)) == "Hello there"
    assert fed.index(next(e for e in fed if isinstance(e, ReasoningDelta))) < \
        fed.index(next(e for e in fed if isinstance(e, ContentDelta)))
    assert sr.finish() == []


def test_at_the_end_held_reasoning_comes_before_content() -> None:
    sr = StreamRepairer(WRITE, id_factory=ids)  # not incremental: the block is decided at the end
    events = [e for p in ["<think>", "plan", "</think>", "Done."] for e in sr.feed(p)] + sr.finish()
    assert [type(e) for e in events] == [ReasoningDelta, ContentDelta]


def test_a_call_cut_after_its_header_is_not_completed_and_is_reported() -> None:
    text = '<tool_call>{"name": "write_file", "arguments": {"path": "a", "content": "abc'  # cut off
    sr, got = stream_incremental(list(text), WRITE)
    assert sr.after_header and sr.after_header[0].kind == "failed_after_header"
    assert "truncated" in sr.after_header[0].detail
    assert got.call_list()[0][2] == '{"path": "a", "content": "abc'  # as cut: no closing invented


def test_a_failure_after_header_with_whole_arguments_is_completed_and_reported() -> None:
    text = '<tool_call>{"name": "write_file", "arguments": {"path": "a", "mode": 1}}</tool_call>'  # no content
    sr, got = stream_incremental(list(text), WRITE)
    assert sr.after_header and sr.after_header[0].kind == "failed_after_header"
    assert "truncated" not in sr.after_header[0].detail
    assert json.loads(got.call_list()[0][2]) == {"path": "a", "mode": 1}


def test_on_a_named_choice_other_calls_are_held() -> None:
    text = '<tool_call>{"name": "write_file", "arguments": {"path": "a", "content": "b"}}</tool_call>'
    sr = StreamRepairer(WRITE + TOOLS, id_factory=ids, incremental=True,
                        tool_choice={"type": "function", "function": {"name": "read_file"}})
    events = [e for ch in text for e in sr.feed(ch)]
    assert not any(isinstance(e, ToolCallStart) for e in events)


def test_past_the_bound_text_passes_through_unrepaired() -> None:
    sr = StreamRepairer(WRITE, id_factory=ids, incremental=True, max_chars=1000)
    text = "Prose. <tool_call>{'name': 'write_file'" + "x" * 3000
    out = ""
    for i in range(0, len(text), 100):
        out += "".join(e.text for e in sr.feed(text[i:i + 100]) if isinstance(e, ContentDelta))
    sr.finish()
    assert out == text and sr.result.errors[0].kind == "unrepaired"
    assert len("".join(sr._chunks)) == 0  # nothing kept past the bound


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.integers(1, 9), st.booleans())
def test_emitter_gives_the_canonical_text_for_any_chunking(value: dict, size: int, compact: bool) -> None:
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=compact)
    events, out = JsonEvents(), ArgsEmitter(None)
    got = "".join(out.feed(events.feed(text[i:i + size])) for i in range(0, len(text), size))
    assert got == json.dumps(value, ensure_ascii=False)


def test_emitter_with_a_schema_streams_strings_and_holds_the_rest() -> None:
    tool = ToolIndex(WRITE).get("write_file")
    events, out = JsonEvents(), ArgsEmitter(tool)
    assert out.feed(events.feed('{"path": "ab')) == '{"path": "ab'
    assert out.feed(events.feed('c", "mode": "4')) == 'c", "mode": '
    assert out.feed(events.feed('2"}')) == '42}'


def _feed_all(sr: StreamRepairer, pieces: list[str]) -> list[object]:
    events: list[object] = []
    for p in pieces:
        events += sr.feed(p)
    return events + sr.finish()


def test_a_text_call_held_when_the_bound_passes_goes_out_as_it_came() -> None:
    """Past the bound the rest goes out unrepaired: that includes the `<tool_call>` block being read, whose call
    had not begun, and the whitespace held before it (before, both were dropped with the block)."""
    pieces = ["Some prose here. ", "<tool_call>", '{"name": "read_file", ', '"arguments": {"path": "a"}}',
              "</tool_call>", " tail text"]
    events = _feed_all(StreamRepairer(TOOLS, incremental=True, max_chars=40), pieces)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "".join(pieces)
    assert not any(isinstance(e, ToolCallStart) for e in events)


def test_a_call_candidate_in_think_when_the_bound_passes_goes_out_as_reasoning() -> None:
    """Past the bound no call can start, so a candidate inside <think> is reasoning like the rest of the block
    (the text from it on was dropped)."""
    pieces = ["<think>plan: ", '<tool_call>{"name": "read_file"', ', "arguments": {"path": "a"}}</tool_call>',
              " more</think>", "Answer."]
    events = _feed_all(StreamRepairer(TOOLS, incremental=True, max_chars=30), pieces)
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == \
        'plan: <tool_call>{"name": "read_file", "arguments": {"path": "a"}}</tool_call> more'
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Answer."


def test_after_the_bound_a_call_under_way_finishes_and_the_next_block_is_text() -> None:
    first = '<tool_call>{"name": "write_file", "arguments": {"path": "a", "content": "' + "x" * 60 + '"}}</tool_call>'
    second = '\n<tool_call>{"name": "write_file", "arguments": {"path": "b", "content": "y"}}</tool_call>'
    text = first + second
    for size in (1, 7, 40):  # the first call's header goes out at its 57th character (its first value's quote):
        sr = StreamRepairer(WRITE, id_factory=ids, incremental=True, max_chars=64)  # before the bound, or not
        events = _feed_all(sr, [text[i:i + size] for i in range(0, len(text), size)])
        starts = [e for e in events if isinstance(e, ToolCallStart)]
        args = "".join(e.text for e in events if isinstance(e, ToolArgsDelta))
        content = "".join(e.text for e in events if isinstance(e, ContentDelta))
        if size == 40:  # the piece that passed the bound would have begun the call: all of it as it came
            assert not starts and content == text
            continue
        assert len(starts) == 1 and json.loads(args) == {"path": "a", "content": "x" * 60}
        assert content.strip() == second.strip()


_WORDS = st.sampled_from(["Plan", "the", "fix.", " ", "\n", "<think>", "</think>", "<tool_call>", "</tool_call>",
                          '{"name": "nope", "arguments": {"a": 1}}', '{"name": "no', 'pe"}', "<tool_", "call>"])


def _bare(text: str) -> str:
    return "".join(text.replace("<think>", "").replace("</think>", "").split())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_WORDS, min_size=1, max_size=40), st.lists(st.integers(1, 9), min_size=1, max_size=20),
       st.integers(0, 200))
@example(["<tool_call>", "Plan"], [1], 11)  # the block being read was dropped
@example(["<think>", *["Plan"] * 12, "<tool_call>", "Plan"], [2], 66)  # the reasoning sent went out again as text
@example(["<think>", "<tool_"], [2], 8)  # held in <think> as a possible call, then lost at the end
def test_past_the_bound_no_text_is_lost_when_no_call_went_out(words: list[str], sizes: list[int], bound: int) -> None:
    """Whatever the text and wherever the bound falls, when no call's header went out (no declared tool is named)
    every character the model wrote reaches the client once, as content or reasoning, `<think>` markers and
    whitespace aside (what the stream takes out of prose and reasoning)."""
    text = "".join(words)
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True, max_chars=bound)
    pieces, at = [], 0
    while at < len(text):
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(text[at:at + size])
        at += size
    events = _feed_all(sr, pieces)
    assert not any(isinstance(e, ToolCallStart) for e in events)
    if len(text) <= bound:
        return  # within the bound: the one-shot repair's answer (test_incremental_agrees_with_one_shot)
    out = "".join(e.text for e in events if isinstance(e, (ContentDelta, ReasoningDelta)))
    assert _bare(out) == _bare(text)


@pytest.mark.parametrize("incremental", [True, False])
def test_reasoning_counts_toward_the_bound(incremental: bool) -> None:
    """Reasoning is kept (for the one-shot answer at the end) like text: past the bound it passes through and is
    no longer kept, so an endless reasoning stream cannot grow the repairer."""
    sr = StreamRepairer(TOOLS, incremental=incremental, max_chars=1000)
    out = []
    for _ in range(50):
        out += sr.feed_reasoning("think " * 10)
    out += sr.feed("The answer.")
    out += sr.finish()
    assert "".join(e.text for e in out if isinstance(e, ReasoningDelta)) == "think " * 500
    assert "".join(e.text for e in out if isinstance(e, ContentDelta)) == "The answer."
    assert sum(map(len, sr._reasoning)) <= 1000 and sr.result.errors[0].kind == "unrepaired"


WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
PARIS_TEXT = 'Also <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.mark.parametrize("upstream_id", ["call_up0", None])
@pytest.mark.parametrize("parallel", [True, False])
def test_a_text_call_streamed_before_a_structured_call_goes_out_once(upstream_id: str | None,
                                                                     parallel: bool) -> None:
    """A `<tool_call>` in the text whose call went out before the upstream's structured call came: matched to its
    final counterpart (it was closed as failed and sent again, under the id of the position the one-shot answer,
    structured calls first, gives it). The answer has the one-shot answer's calls, the text call first (as it went
    out); with parallel_tool_calls false the one that went out (it cannot be taken back)."""
    native = {"index": 0, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    if upstream_id is not None:
        native["id"] = upstream_id
    for chunks in chunkings(PARIS_TEXT, 7):
        sr = StreamRepairer(WEATHER, id_factory=ids, incremental=True, parallel_tool_calls=parallel)
        got = Assembled()
        for ch in chunks:
            got.add(sr.feed(ch))
        got.add(sr.feed_tool_calls([native]))
        got.add(sr.finish())
        assert not sr.after_header
        cities = [json.loads(c[2])["city"] for c in got.call_list()]
        assert cities == (["Paris", "Oslo"] if parallel else ["Paris"])
        assert len({c[0] for c in got.call_list()}) == len(cities)
        assert got.content == "Also"
        assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in sr.result.tool_calls] == \
            [tuple(c) for c in got.call_list()]  # the answer recorded is the one the client got


@pytest.mark.parametrize("how", ["structured", "text"])
def test_a_surrogate_pair_cut_between_pieces_goes_out_in_one_piece(how: str) -> None:
    """A raw high surrogate at the end of a piece waits for the next piece, as an escaped one did: sent alone, each
    half is a lone surrogate (a client can neither encode it nor join the halves into the character)."""
    pieces = ['{"path": "a\ud83d', '\ude00b"}']
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    if how == "structured":
        events = sr.feed_tool_calls([{"index": 0, "id": "c", "type": "function",
                                      "function": {"name": "read_file", "arguments": ""}}])
        for p in pieces:
            events += sr.feed_arguments(0, p)
    else:
        events = sr.feed('<tool_call>{"name": "read_file", "arguments": ' + pieces[0])
        events += sr.feed(pieces[1] + "}</tool_call>")
    events += sr.finish()
    args = [e.text for e in events if isinstance(e, ToolArgsDelta)]
    assert not any("\ud800" <= a[-1:] <= "\udbff" or "\udc00" <= a[:1] <= "\udfff" for a in args), args
    assert "".join(args) == '{"path": "a\ud83d\ude00b"}' and not sr.after_header


def test_structured_calls_go_out_in_the_upstreams_order() -> None:
    """A structured call whose arguments break before their first value (single quotes: repaired at the end) starts
    no call as they come; the call after it waits too, so the calls go out in the upstream's order, the whole
    answer's (before, the second went out first and the repaired first came after it)."""
    tools = [{"type": "function", "function": {"name": "write_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
    r = StreamRepairer(tools, incremental=True)
    events = []
    for d in ({"index": 0, "id": "call_0", "type": "function", "function": {"name": "write_file", "arguments": ""}},
              {"index": 0, "function": {"arguments": "{'path': 'q'}"}},
              {"index": 1, "id": "call_1", "type": "function", "function": {"name": "write_file", "arguments": ""}},
              {"index": 1, "function": {"arguments": '{"path": "a.txt"}'}}):
        events += r.feed_tool_calls([d])
    events += r.finish()
    assert [(e.id, e.arguments) for e in events if isinstance(e, ToolCallDelta)] == [
        ("call_0", '{"path": "q"}'), ("call_1", '{"path": "a.txt"}')]
    assert [c["id"] for c in r.result.tool_calls] == ["call_0", "call_1"]
