"""Structured calls as servers' own tool parsers hand them over, broken in ways reported against them: the call the
model made comes out whole, one-shot and streamed alike (whole or piece by piece), and nothing is made of arguments
that really were cut off or of text that is not a call's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from repair import StreamRepairer, repair_message
from tests.repair.helpers import ids

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": props, "required": list(props)[:1]}}} for name, props in (
    ("get_weather", {"city": {"type": "string"}, "unit": {"type": "string"}}),
    ("record", {"date": {"type": "string"}, "amount": {"type": "integer"}, "fee_type": {"type": "string"},
                "income_type": {"type": "string"}}),
    ("shell", {"command": {"type": "string"}}),
    ("nested", {"a": {"type": "object"}}))]
GLM = '{"date": "2025-03-26", "amount": 300, "fee_type": "过路费", "income_type": "支出"}'

# (name as sent, arguments as sent) -> (name, arguments) of the call, or None: no call
CASES: dict[str, tuple[tuple[str, str], tuple[str, dict[str, Any]] | None]] = {
    # vllm-project/vllm#32152: hermes streaming drops the final brace when tokens come chunked
    "final brace dropped": (("get_weather", '{"city": "Paris"'), ("get_weather", {"city": "Paris"})),
    "an inner object cut": (("nested", '{"a": {"b": "x"'), None),  # one bracket only: what the bug drops
    # vllm-project/vllm#42167 (GLM-5.1 with MTP), #39615: the final flush sends the whole arguments again
    "resent whole after its pieces": (("record", GLM[:-1] + GLM), ("record", json.loads(GLM))),
    "closing tag left in the arguments": (("get_weather", '{"city": "Paris"}</tool_call>'),
                                          ("get_weather", {"city": "Paris"})),
    "end token left in the arguments": (("get_weather", '{"city": "Paris"} <|tool_call_end|>'),
                                        ("get_weather", {"city": "Paris"})),
    # ggml-org/llama.cpp#15102: gpt-oss's `<|constrain|>json` glued to the name
    "json glued to the name": (("shelljson", '{"command": "ls"}'), ("shell", {"command": "ls"})),
    "channel token glued to the name": (("get_weather<|channel|>commentary", '{"city": "Paris"}'),
                                        ("get_weather", {"city": "Paris"})),
    "recipient as the name": (("to=functions.shell", '{"command": "ls"}'), ("shell", {"command": "ls"})),
    # really cut off, or not a call's: nothing is made of them
    "cut inside a string": (("get_weather", '{"city": "Par'), None),
    "cut after a number": (("record", '{"date": "d", "amount": 30'), None),
    "cut after a comma": (("get_weather", '{"city": "Paris",'), None),
    "cut inside a list": (("nested", '{"a": {"b": ["x", "y"'), None),
    "prose after the arguments": (("get_weather", '{"city": "Paris"} and then Lyon'), None),
    "two different objects": (("get_weather", '{"city": "Paris"}{"city": "Lyon"}'), None),
}


def _call(name: str, args: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}


def _calls(result: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in result.tool_calls]


@pytest.mark.parametrize("case", list(CASES))
def test_one_shot(case: str) -> None:
    (name, args), want = CASES[case]
    result = repair_message(None, TOOLS, tool_calls=[_call(name, args)])
    assert _calls(result) == ([want] if want else [])
    assert bool(result.errors) is (want is None)


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("case", [c for c, (_, want) in CASES.items() if want is not None])
def test_streamed(case: str, incremental: bool) -> None:
    (name, args), want = CASES[case]
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=incremental)
    sr.feed_tool_calls([{"index": 0, "id": "call_1", "type": "function", "function": {"name": name,
                                                                                        "arguments": ""}}])
    for i in range(0, len(args), 3):
        sr.feed_arguments(0, args[i:i + 3])
    sr.finish()
    assert sr.result is not None and _calls(sr.result) == [want] and not sr.after_header


@pytest.mark.parametrize("pieces", [(GLM[:20], GLM[20:-1], GLM), ('{"date":', GLM)], ids=["after a value",
                                                                                      "after a key"])
def test_a_final_flush_streamed_goes_on_from_what_was_sent(pieces: tuple[str, ...]) -> None:
    """The pieces of the arguments, then all of them again in one piece (vllm-project/vllm#39615): streamed piece
    by piece, the client gets the arguments once (the flush was taken for a nested value: `{"date": {"date": ...`,
    and closed as a failure after the header)."""
    sr = StreamRepairer(TOOLS, id_factory=ids, incremental=True)
    events = sr.feed_tool_calls([{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "record", "arguments": ""}}])
    for piece in pieces:
        events += sr.feed_arguments(0, piece)
    events += sr.finish()
    sent = "".join(e.text for e in events if type(e).__name__ == "ToolArgsDelta")
    assert json.loads(sent) == json.loads(GLM) and not sr.after_header
    assert sr.result is not None and _calls(sr.result) == [("record", json.loads(GLM))]


def test_json_glued_only_as_harmony_writes_it() -> None:
    """`shelljson` is `shell` with harmony's `json` glued on; `export_json`, `exportJson` and `get_json` are other
    tools' names, never `export` or `get`."""
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
             for n in ("shell", "export", "get")]
    for written, want in (("shelljson", "shell"), ("export_json", None), ("exportJson", None), ("get_json", None),
                          ("getJSON", None), ("export.json", None)):
        result = repair_message(None, tools, tool_calls=[_call(written, "{}")])
        assert [c["function"]["name"] for c in result.tool_calls] == ([want] if want else []), written
