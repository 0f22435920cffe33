"""Validate-only (repair.validate): an already-repaired message is checked, never changed, and agrees with what
repair made of it; the streaming validator passes text straight through; both sides turn events into the same
deltas (repair.deltas)."""

from __future__ import annotations

import json

import pytest

from repair import ContentDelta, ReasoningDelta, RepairIssue, ToolCallDelta, repair_message
from repair.deltas import stream_deltas
from repair.incremental import ToolArgsDelta, ToolCallStart, canonical_arguments
from repair.validate import Reported, StreamValidator, validate_message
from tests.repair.corpus import ALL, TOOLS, Case
from tests.repair.helpers import ids

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]


def _call(name: str, args: str, cid: str = "call_1") -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_validating_what_repair_made_changes_nothing(case: Case) -> None:
    tools = TOOLS if case.tools is None else case.tools
    repaired = repair_message(case.text, tools, id_factory=ids, **case.opts)
    for c in repaired.tool_calls:
        c["function"]["arguments"] = canonical_arguments(c["function"]["arguments"])
    opts = {k: v for k, v in case.opts.items() if k in ("tool_choice", "parallel_tool_calls")}
    reported = Reported(tuple(sorted({r.kind for r in repaired.repairs})), tuple(repaired.errors))
    checked = validate_message(repaired.content, tools, tool_calls=repaired.tool_calls,
                               reasoning_content=repaired.reasoning_content, reported=reported, **opts)
    assert checked.tool_calls == repaired.tool_calls
    assert checked.content == repaired.content and checked.reasoning_content == repaired.reasoning_content
    assert {e.kind for e in checked.errors} == {e.kind for e in repaired.errors}
    assert {r.kind for r in checked.repairs} == {r.kind for r in repaired.repairs}
    assert checked.format is None


def test_content_is_never_scanned() -> None:
    prose = 'Here is how a call looks: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    r = validate_message(prose, WEATHER)
    assert r.content == prose and r.tool_calls == [] and r.outcome == "none"


def test_each_structured_call_is_checked() -> None:
    calls = [_call("get_weather", '{"city": "Paris"}', "a"), _call("nope", "{}", "b"),
             _call("get_weather", '{"town": "Paris"}', "c"), _call("get_weather", "{'city': 'x'}", "d"),
             _call("get_weather", '["Paris"]', "e"), _call("Get_Weather", '{"city": "Rome"}', "f")]
    r = validate_message(None, WEATHER, tool_calls=calls)
    assert r.tool_calls == [calls[0]]  # byte for byte, id kept
    assert [(e.kind, e.call_index) for e in r.errors] == [
        ("unknown_name", 1), ("schema_mismatch", 2), ("invalid_json", 3), ("schema_mismatch", 4),
        ("unknown_name", 5)]  # a name that would need normalising is no declared name: no repair here
    assert r.repairs == [] and r.outcome == "failed"


def test_tool_choice_and_parallel_calls() -> None:
    two = [_call("get_weather", '{"city": "Paris"}', "a"), _call("get_time", "{}", "b")]
    none = validate_message(None, WEATHER, tool_calls=two, tool_choice="none")
    assert none.tool_calls == [] and [(r.kind, r.call_index) for r in none.repairs] == [
        ("tool_choice_none", 0), ("tool_choice_none", 1)]  # written as text (see below)
    named = validate_message(None, WEATHER, tool_calls=two,
                             tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert [c["id"] for c in named.tool_calls] == ["b"] and [e.kind for e in named.errors] == ["not_allowed"]
    assert [e.kind for e in validate_message("hi", WEATHER, tool_choice="required").errors] == ["no_call"]
    trimmed = validate_message(None, WEATHER, tool_calls=two, parallel_tool_calls=False)
    assert [c["id"] for c in trimmed.tool_calls] == ["a"] and [r.kind for r in trimmed.repairs] == ["parallel_trimmed"]
    dup = validate_message(None, WEATHER, tool_calls=[two[0], _call("get_time", "{}", "a")], id_factory=ids)
    assert len({c["id"] for c in dup.tool_calls}) == 2


def test_the_producers_report_is_carried_and_bounded() -> None:
    reported = Reported.parse({"repairs": ["single_quotes", 3], "tool_call_failures": [
        {"kind": "unknown_name", "detail": "x" * 1000, "call_index": 1}, {"kind": ""}, "junk"]},
        "trailing_comma,single_quotes")
    assert reported.repairs == ("single_quotes", "trailing_comma")
    assert [(f.kind, len(f.detail), f.call_index) for f in reported.failures] == [("unknown_name", 300, 1)]
    assert Reported.parse(None) == Reported() and not Reported.parse(["not", "a", "report"])
    r = validate_message(None, WEATHER, tool_calls=[_call("get_weather", '{"city": "Paris"}')],
                         tool_choice="required", reported=Reported(("single_quotes",), (RepairIssue("no_call"),)))
    assert r.outcome == "failed" and [e.kind for e in r.errors] == ["no_call"]  # not twice
    ok = validate_message(None, WEATHER, tool_calls=[_call("get_weather", '{"city": "Paris"}')],
                          reported=Reported(("single_quotes",)))
    assert ok.outcome == "repaired" and [r.kind for r in ok.repairs] == ["single_quotes"]
    assert Reported.parse(reported.as_dict()) == reported


def _fragments(args: str, cid: str = "call_1", name: str = "get_weather", index: int = 0) -> list[dict]:
    head = {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
    return [head] + [{"index": index, "function": {"arguments": args[i:i + 4]}} for i in range(0, len(args), 4)]


def test_stream_passes_text_through_and_holds_calls_to_the_end() -> None:
    v = StreamValidator(WEATHER)
    marker = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call> '
    assert v.feed(marker) == [ContentDelta(marker)]  # no scan, nothing held (trailing space too)
    assert v.feed_reasoning("hmm") == [ReasoningDelta("hmm")]
    assert v.feed_tool_calls(_fragments('{"city": "Paris"}')) == []
    assert v.finish() == [ToolCallDelta(0, "call_1", "get_weather", '{"city": "Paris"}')]
    assert v.result.content == marker and v.result.reasoning_content == "hmm" and v.result.outcome == "valid"
    with pytest.raises(RuntimeError):
        v.feed("more")


def test_stream_incremental_forwards_calls_and_reports_late_failures() -> None:
    v = StreamValidator(WEATHER, incremental=True)
    events = [e for f in _fragments('{"city": "Paris"}') for e in v.feed_tool_calls([f])]
    assert events[0] == ToolCallStart(0, "call_1", "get_weather")
    assert "".join(e.text for e in events if isinstance(e, ToolArgsDelta)) == '{"city": "Paris"}'
    assert v.finish() == [] and v.result.tool_calls == [_call("get_weather", '{"city": "Paris"}')]
    assert v.after_header == []

    bad = StreamValidator(WEATHER, incremental=True)
    for f in _fragments('{"town": "Paris"}') + _fragments("{}", "call_2", "nope", 1):
        bad.feed_tool_calls([f])
    bad.finish()
    assert [(i.kind, i.call_index) for i in bad.after_header] == [("failed_after_header", 0)]
    assert [e.kind for e in bad.result.errors] == ["schema_mismatch", "unknown_name"]

    late = StreamValidator(WEATHER, incremental=True)
    for f in _fragments('{"city": "Paris"}'):
        late.feed_tool_calls([f])
    late.report(Reported(failures=(RepairIssue("failed_after_header", "get_weather: differs", 0),)))
    late.finish()
    assert [(i.kind, i.call_index) for i in late.after_header] == [("failed_after_header", 0)]
    assert late.result.outcome == "failed"  # still refused or re-asked where the policy holds calls


def test_stream_holds_text_after_a_reported_failure_unless_incremental() -> None:
    failed = Reported(failures=(RepairIssue("unknown_name", "'nope' is not a declared tool", 0),))
    for incremental in (False, True):
        v = StreamValidator(WEATHER, incremental=incremental)
        assert v.feed("Sure. ") == [ContentDelta("Sure. ")]
        v.report(failed)  # the engine's report comes before the markup it could not make valid
        markup = '<tool_call>{"name": "nope"}</tool_call>'
        if incremental:
            assert v.feed(markup) == [ContentDelta(markup)] and v.finish() == []
        else:
            assert v.feed(markup) == [] and v.feed(" ok") == []
            assert v.finish() == [ContentDelta(markup + " ok")]
        assert v.result.outcome == "failed" and v.result.errors == list(failed.failures)


def test_stream_bound() -> None:
    v = StreamValidator(WEATHER, max_chars=10)
    assert v.feed("x" * 20) == [ContentDelta("x" * 20)]  # still goes out
    v.feed_tool_calls(_fragments('{"city": "Paris"}'))
    assert v.finish() == [] and [e.kind for e in v.result.errors] == ["unrepaired"]


def test_deltas() -> None:
    events = [ContentDelta("a"), ContentDelta(""), ContentDelta("b"), ReasoningDelta("r"),
              ToolCallStart(0, "i", "f"), ToolArgsDelta(0, ""), ToolArgsDelta(0, '{"x":1}'),
              ToolCallDelta(1, "j", "g", '{"y":2}'), ContentDelta("c")]
    deltas, calls = stream_deltas(events)
    assert calls and deltas == [
        {"content": "ab"}, {"reasoning_content": "r"},
        {"tool_calls": [{"index": 0, "id": "i", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":1}'}}]},
        {"tool_calls": [{"index": 1, "id": "j", "type": "function",
                         "function": {"name": "g", "arguments": json.dumps({"y": 2})}}]},
        {"content": "c"}]
    assert stream_deltas([ReasoningDelta("a"), ReasoningDelta("b")]) == ([{"reasoning_content": "ab"}], False)


def test_a_later_delta_finds_its_call_by_index() -> None:
    v = StreamValidator(WEATHER, incremental=True)
    assert v.call_at(0) is None
    v.feed_tool_calls([{"index": 0, "id": "up_1", "function": {"name": "get_weather", "arguments": ""}}])
    assert v.call_at(0) == (None, "up_1") and v.call_at(None) is None
    v.feed_tool_calls([{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}])
    assert v.call_at(0) == (0, "up_1")


@pytest.mark.parametrize("incremental", [False, True])
def test_tool_choice_none_writes_calls_as_text_as_repair_does(incremental: bool) -> None:
    """Under "none" a structured call comes as text after the content, streamed or whole, as `repair_message`
    writes it."""
    calls = [_call("get_weather", '{"city": "Paris"}')]
    whole = validate_message("Sure.", WEATHER, tool_calls=calls, tool_choice="none")
    assert whole == repair_message("Sure.", WEATHER, tool_calls=calls, tool_choice="none")
    assert whole.content == 'Sure.\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
    v = StreamValidator(WEATHER, tool_choice="none", incremental=incremental)
    events = [*v.feed("Sure."), *v.feed_tool_calls([{"index": 0, "id": "call_1", "function": {
        "name": "get_weather", "arguments": '{"city": '}}]), *v.feed_tool_calls([{"index": 0, "function": {
            "arguments": '"Paris"}'}}]), *v.finish()]
    assert all(isinstance(e, ContentDelta) for e in events)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == whole.content
    assert v.result == whole
