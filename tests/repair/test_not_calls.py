"""Text that quotes or describes a call, or is data naming a tool, is not a call: the router never invents one.
Each case was an invented call (or a call with its arguments dropped) before; stream and one-shot agree."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of


def _tool(name: str, props: dict, required: list[str] | None = None) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": props, **({"required": required} if required else {})}}}


TOOLS = [_tool("read_file", {"path": {"type": "string"}}, ["path"]),
         _tool("run_shell", {"command": {"type": "string"}}, ["command"]),
         _tool("search", {"query": {"type": "string"}}), _tool("list_files", {})]


@pytest.mark.parametrize("text", [
    # the prose forms quoted inside a sentence (a log line, a summary of what was done)
    'Your log shows [Tool call: run_shell({"command": "rm -rf /"})] which is dangerous; do not run it.',
    'Earlier I made a tool call: read_file(path="x"), which failed, so I stopped.',
    'The log shows [Calling tool: read_file({"path": "a.py"})] from the last run.',
    # an agent UI's log line quoted back (hermes-studio#942): no name(...) call in it
    '[Calling tool: run_shell with arguments: {"command": "ls"}]',
    '[Calling tool: write_file({"path": "a.py"})]',  # no such tool
    # data that names a tool but has no arguments key: not a call without arguments
    '{"tool": "search", "reason": "needs fresh data"}',
    '{"name": "search", "results": [{"title": "a"}]}',
    '{"tool": "list_files", "reason": "to see the tree"}',
    '```json\n{"name": "search", "results": [{"title": "a"}]}\n```',
    # data next to call-shaped objects: the value (a list, a fence) is data, what it holds too
    '[{"tool": "list_files", "reason": "x"}, {"name": "search", "arguments": {"query": "q"}}]',
    '```json\n{"tool": "list_files", "reason": "x"}\n{"name": "search", "arguments": {"query": "q"}}\n```',
    '{"tool": "list_files", "example": {"name": "search", "arguments": {"query": "q"}}}',
])
def test_not_a_call(text: str) -> None:
    result = repair_message(text, TOOLS)
    assert calls_of(result) == [] and result.content == text and result.errors == []  # nothing to retry
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize(("text", "calls"), [
    ('[Tool call: run_shell({"command": "ls"})]', [("run_shell", {"command": "ls"})]),
    ('Let me look.\nTool call: read_file(path="a.py")', [("read_file", {"path": "a.py"})]),
    # LFM2.5 copying how Rapid-MLX writes earlier calls into the prompt (Rapid-MLX PR #1592)
    ('[Calling tool: read_file({"path": "a.py"})]', [("read_file", {"path": "a.py"})]),
    ('Let me look.\nCalling tool: run_shell(command="ls")', [("run_shell", {"command": "ls"})]),
    ('{"name": "list_files"}', [("list_files", {})]),
    ('{"name": "search", "id": "call_1", "type": "function"}', [("search", {})]),
    ('{"name": "search", "arguments": {"query": "x"}, "reason": "fresh data"}', [("search", {"query": "x"})]),
    # in a format's own markup the object is a call whatever else it holds (a model's "thought")
    ('<tool_call>{"name": "list_files", "thought": "I need the tree"}</tool_call>', [("list_files", {})]),
    ('<|python_tag|>{"name": "list_files", "reasoning": "x"}', [("list_files", {})]),
    ('{"name": "list_files", "thought": "x"}</tool_call>', [("list_files", {})]),
    # a call next to data naming another tool: the call alone (the data stays text)
    ('Here is the record:\n{"tool": "list_files", "reason": "x"}\n{"name": "search", "arguments": {"query": "q"}}',
     [("search", {"query": "q"})]),
    ('{"name": "search", "arguments": {"query": "q"}}\n{"tool": "list_files", "reason": "x"}',
     [("search", {"query": "q"})]),
    # content after a think block begins a line
    ('<think>I need the tree.</think>[Tool call: list_files({})]', [("list_files", {})]),
])
def test_still_a_call(text: str, calls: list) -> None:
    assert calls_of(repair_message(text, TOOLS)) == calls
    assert_stream_matches(text, TOOLS)


def test_a_stream_starts_no_more_calls_than_the_answer_holds() -> None:
    """A model looping on a call: the stream sent a header for every block (thousands) where the answer holds the
    64 a message may have; and each block read the whole text again (quadratic)."""
    from repair import StreamRepairer

    text = '<tool_call>{"name": "list_files", "arguments": {}}</tool_call>' * 200
    sr = StreamRepairer(TOOLS, incremental=True)
    events = [e for i in range(0, len(text), 7) for e in sr.feed(text[i:i + 7])] + sr.finish()
    starts = [e for e in events if type(e).__name__ == "ToolCallStart"]
    assert sr.result is not None and len(starts) == len(sr.result.tool_calls) == 64 and not sr.after_header


WRITE = [_tool("Write", {"file_path": {"type": "string"}, "content": {"type": "string"}}, ["file_path", "content"])]


@pytest.mark.parametrize("text", [
    '<tool_call>{"name": "Write", "arguments": {"file_path": "/w/notes.md", "content": }}</tool_call>',
    '<tool_call>{"name": "Write", "arguments": {"file_path": "/w/notes.md", "content": , "x": 1}}</tool_call>',
    '<tool_call>{"name": "Write", "arguments": {"file_path": "/w/notes.md", "content": -}}</tool_call>',
    '<tool_call>{"name": "Write", "arguments": {"file_path": "/w/notes.md", "content": :}}</tool_call>',
    '{"name": "Write", "arguments": {"file_path": "", "content": }}',
])
def test_a_missing_value_is_not_made_up(text: str) -> None:
    """The model wrote a key and no value: json-repair fills in an empty string, which made a valid call that wrote
    an empty file. Not a call the model made whole: its text stays, reported as invalid JSON."""
    result = repair_message(text, WRITE)
    assert calls_of(result) == [] and result.content == text
    assert [e.kind for e in result.errors] == ["invalid_json"]


def test_an_empty_string_the_model_wrote_is_kept() -> None:
    text = "<tool_call>{'name': 'Write', 'arguments': {'file_path': '/w/a', 'content': '',}}</tool_call>"
    assert calls_of(repair_message(text, WRITE)) == [("Write", {"file_path": "/w/a", "content": ""})]


@pytest.mark.parametrize("text", [
    # the form written about, in prose or inline code
    "Qwen wrote <parameter=read_file> where <function=read_file> belongs, then stopped.",
    "It emits `<parameter=read_file>\n<parameter=path>a.py</parameter>\n</function>` instead of a call.",
    # what follows the name is no call's parameters, or no </function> closes them
    "<parameter=read_file>\nI would read the file here.\n</function>",
    "<parameter=read_file>\n<parameter=path>\na.py\n</parameter>\nand nothing after it: no call was made.",
    # not a declared tool
    "<parameter=delete_all>\n<parameter=path>\n/\n</parameter>\n</function>",
])
def test_a_valueless_parameter_is_no_call_opener_without_its_call(text: str) -> None:
    """`<parameter=name>` stands for `<function=name>` (signalnine/q27#24) only where `name` is a declared tool, its
    parameters or its </function> follow right away, and its </function> closes it."""
    result = repair_message(text, TOOLS)
    assert calls_of(result) == [] and result.content == text
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize(("text", "calls"), [
    ("<parameter=read_file>\n<parameter=path>\na.py\n</parameter>\n</function>", [("read_file", {"path": "a.py"})]),
    ("Listing first.\n<parameter=list_files>\n</function>\n</tool_call>", [("list_files", {})]),
    # in its <tool_call> (antirez/ds4#1050): the block goes with the call
    ("<tool_call>\n<parameter=run_shell>\n<parameter=command>\nls\n</parameter>\n</function>\n</tool_call>",
     [("run_shell", {"command": "ls"})]),
])
def test_a_call_opened_by_its_name_as_a_parameter(text: str, calls: list[tuple[str, dict[str, object]]]) -> None:
    result = repair_message(text, TOOLS)
    assert calls_of(result) == calls and "<" not in (result.content or "")
    assert_stream_matches(text, TOOLS)
