"""Kimi K3's XTML tool calls (`<|open|>tools<|sep|><|open|>call tool="f" ...`): calls where the model made them, and
none where the syntax is only shown."""

from __future__ import annotations

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

RUN = {"type": "function", "function": {"name": "run_command", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}, "task_id": {"type": "integer"}},
    "required": ["command"]}}}
TOOLS = [RUN]


def _call(args: str, name: str = "run_command") -> str:
    return f'<|open|>call tool="{name}" index="1"<|sep|>{args}<|close|>call<|sep|>'


def _arg(key: str, value: str, kind: str | None = "string") -> str:
    typed = f' type="{kind}"' if kind else ""
    return f'<|open|>argument key="{key}"{typed}<|sep|>{value}<|close|>argument<|sep|>'


def _section(*calls: str) -> str:
    return "<|open|>tools<|sep|>" + "".join(calls) + "<|close|>tools<|sep|><|close|>message<|sep|><|end_of_msg|>"


def test_a_section_is_calls_and_its_markers_leave_the_content() -> None:
    text = "Running it.\n" + _section(_call(_arg("command", "ls -la") + _arg("task_id", "7", "number")))
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": "ls -la", "task_id": 7})]
    assert r.content == "Running it." and r.errors == [] and r.repairs == []
    assert_stream_matches(text, TOOLS)


def test_string_values_are_byte_exact_and_other_types_are_json() -> None:
    code = '  echo "a < b" && printf \'%s\\n\' 1\n'
    text = _section(_call(_arg("command", code) + _arg("task_id", "3", None)))
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("run_command", {"command": code, "task_id": 3})]


def test_attribute_entities_are_decoded() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {'a"b': {"type": "string"}}}}}]
    r = repair_message(_section(_call(_arg("a&quot;b", "x"), name="f")), tools, id_factory=ids)
    assert calls_of(r) == [("f", {'a"b': "x"})]


def test_a_call_cut_off_is_reported_and_its_text_kept() -> None:
    text = "<|open|>tools<|sep|>" + '<|open|>call tool="run_command" index="1"<|sep|>' + _arg("command", "rm -r build")
    r = repair_message(text, TOOLS)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"] and r.content == text
    assert_stream_matches(text, TOOLS)


def test_the_syntax_shown_in_code_or_naming_no_tool_is_no_call() -> None:
    shown = _section(_call(_arg("command", "ls")))
    for text in (f"Kimi K3 writes `{shown}` for a call.", _section(_call(_arg("command", "ls"), name="delete_all"))):
        r = repair_message(text, TOOLS)
        assert r.tool_calls == [] and r.content == text
        assert_stream_matches(text, TOOLS)
    prose = "K3 opens a call with <|open|>call and names the tool in an attribute."
    assert repair_message(prose, TOOLS).content == prose
    assert_stream_matches(prose, TOOLS)
