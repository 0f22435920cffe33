"""`<function_calls>` around `<invoke name="f">` blocks: DeepSeek V3.2's DSML section with its ｜DSML｜ markers
gone (deepseek-v3.2:cloud through Ollama, nesquena/hermes-webui#702), the shape of Claude's old text tool use.
OLMo 3 puts Python calls in the same tag; both are read, and the section's markup goes with its calls."""

from __future__ import annotations

from typing import Any

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids


def _tool(name: str, *props: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": "string"} for p in props}, "required": list(props)}}}


SKILLS = _tool("skills_list")
READ = _tool("read_file", "path")
REPORTED = '<function_calls>\n<invoke name="skills_list">\n</invoke>\n</function_calls>'


def test_the_reported_section_is_the_call_and_its_markup_goes() -> None:
    r = repair_message(REPORTED, [SKILLS], id_factory=ids)
    assert calls_of(r) == [("skills_list", {})]
    assert r.content is None and r.errors == []
    assert r.format == "deepseek_v32"
    assert_stream_matches(REPORTED, [SKILLS])


def test_parameters_and_two_invokes() -> None:
    text = ('Reading both.\n<function_calls>\n<invoke name="read_file">\n<parameter name="path">a.py</parameter>\n'
            '</invoke>\n<invoke name="read_file">\n<parameter name="path" string="true">b.py</parameter>\n'
            '</invoke>\n</function_calls>')
    r = repair_message(text, [READ], id_factory=ids)
    assert calls_of(r) == [("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"})]
    assert r.content == "Reading both."
    assert_stream_matches(text, [READ])


def test_python_calls_in_the_tag_are_still_olmo3() -> None:
    text = '<function_calls>read_file(path="a.py")</function_calls>'
    r = repair_message(text, [READ], id_factory=ids)
    assert calls_of(r) == [("read_file", {"path": "a.py"})]
    assert r.format == "olmo3"


def test_an_undeclared_tool_stays_text() -> None:
    text = '<function_calls>\n<invoke name="rm_rf">\n</invoke>\n</function_calls>'
    r = repair_message(text, [READ], id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert [e.kind for e in r.errors] == ["unknown_name"]


def test_cut_off_inside_a_value_is_no_call() -> None:
    text = '<function_calls>\n<invoke name="read_file">\n<parameter name="path">a.p'
    r = repair_message(text, [READ], id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert [e.kind for e in r.errors] == ["truncated"]
