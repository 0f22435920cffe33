"""Damaged call markup from public reports that is unambiguous given the declared tools, recovered; the same
shapes naming no declared tool stay text."""

from __future__ import annotations

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids


def _tool(name: str, *props: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": "string"} for p in props}, "required": list(props[:1])}}}


SHELL = [_tool("send_command_to_shell", "command")]
BROWSER = [_tool("browser_action", "task")]
RUN = [_tool("run_command", "command")]


def _ok(text: str, tools: list[dict], want: list[tuple[str, dict]], kinds: list[str]) -> None:
    r = repair_message(text, tools, id_factory=ids)
    assert calls_of(r) == want
    assert r.errors == [] and not r.content
    assert sorted({x.kind for x in r.repairs}) == sorted(kinds)
    assert_stream_matches(text, tools)


def test_glm_key_glued_to_the_name() -> None:
    text = "<tool_call>send_command_to_shellcommand</arg_key><arg_value>echo test</arg_value></tool_call>"
    _ok(text, SHELL, [("send_command_to_shell", {"command": "echo test"})], ["opening_tag"])


def test_glm_key_after_the_name_without_its_opener() -> None:
    text = "<tool_call>browser_action task</arg_key><arg_value>...</arg_value></tool_call>"
    _ok(text, BROWSER, [("browser_action", {"task": "..."})], ["opening_tag"])


def test_glm_call_opener_written_for_the_key_opener() -> None:
    text = ('<tool_call>run_command<tool_call>command</arg_key><arg_value>echo "whoami: $(whoami)"</arg_value>'
            '</tool_call>')
    _ok(text, RUN, [("run_command", {"command": 'echo "whoami: $(whoami)"'})], ["opening_tag"])


def test_glm_missing_key_opener_needs_a_declared_tool() -> None:
    for text, tools in (
        ("<tool_call>send_command_to_shellcmd</arg_key><arg_value>echo test</arg_value></tool_call>", SHELL),
        ("<tool_call>other_tool task</arg_key><arg_value>x</arg_value></tool_call>", BROWSER),
        ("<tool_call>other<tool_call>command</arg_key><arg_value>x</arg_value></tool_call>", RUN),
    ):
        r = repair_message(text, tools, id_factory=ids)
        assert r.tool_calls == [] and r.content == text
        assert_stream_matches(text, tools)


WRITE = [_tool("write", "content")]


def test_kimi_call_marker_inside_a_json_string() -> None:
    text = ('<|tool_calls_section_begin|><|tool_call_begin|>functions.write:0<|tool_call_argument_begin|>'
            '{"content": "use <|tool_call_begin|> to start"}<|tool_call_end|><|tool_calls_section_end|>')
    _ok(text, WRITE, [("write", {"content": "use <|tool_call_begin|> to start"})], [])
    two = text.replace("<|tool_calls_section_end|>", "<|tool_call_begin|>functions.write:1"
                       '<|tool_call_argument_begin|>{"content": "b <|tool_call_end|>"}<|tool_call_end|>'
                       "<|tool_calls_section_end|>")
    _ok(two, WRITE, [("write", {"content": "use <|tool_call_begin|> to start"}),
                     ("write", {"content": "b <|tool_call_end|>"})], [])
