"""Bugs real model outputs exposed (issue #14), each reproduced as it was reported."""

from __future__ import annotations

from typing import Any

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids


def _tool(name: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    return {"type": "function", "function": {"name": name, "parameters": params}}


EDIT = _tool("edit", {"path": {"type": "string"}, "code": {"type": "string"}}, ["path", "code"])


def test_glm_values_are_byte_exact() -> None:
    code = "    def f():\n        return 1\n"
    text = f"<tool_call>edit\n<arg_key>path</arg_key>\n<arg_value>m.py</arg_value>\n<arg_key>code</arg_key>\n" \
           f"<arg_value>{code}</arg_value>\n</tool_call>"
    r = repair_message(text, [EDIT], id_factory=ids)
    assert calls_of(r) == [("edit", {"path": "m.py", "code": code})]
    assert r.errors == [] and r.repairs == []
    assert_stream_matches(text, [EDIT])


def test_nonstandard_schema_types_still_validate() -> None:
    tools = [_tool("t", {"x": {"type": "float"}, "o": {"type": "object"}, "n": {"type": "int"},
                         "flag": {"type": "bool"}, "items": {"type": "list"}, "s": {"type": "str"}})]
    ok = repair_message('<tool_call>{"name": "t", "arguments": {"x": "3.14", "n": "2", "flag": "true", '
                        '"items": ["a"], "s": "v"}}</tool_call>', tools, id_factory=ids)
    assert calls_of(ok) == [("t", {"x": 3.14, "n": 2, "flag": True, "items": ["a"], "s": "v"})]
    bad = repair_message('<tool_call>{"name": "t", "arguments": {"o": "not an object"}}</tool_call>', tools)
    assert bad.tool_calls == [] and [e.kind for e in bad.errors] == ["schema_mismatch"]


def test_invalid_schema_parts_are_reported_not_a_switch_off() -> None:
    tools = [_tool("t", {"x": {"type": "floaty"}, "o": {"type": "object"}, "m": {"minimum": "zero"}})]
    bad = repair_message('<tool_call>{"name": "t", "arguments": {"o": "not an object"}}</tool_call>', tools)
    assert bad.tool_calls == [] and [e.kind for e in bad.errors] == ["schema_mismatch"]
    ok = repair_message('<tool_call>{"name": "t", "arguments": {"x": 1, "o": {}}}</tool_call>', tools)
    assert len(ok.tool_calls) == 1
    notes = [r.detail for r in ok.repairs if r.kind == "schema_invalid"]
    assert notes and "floaty" in notes[0] and "minimum" in notes[0]


def test_python_literal_objects_in_xml_parameters() -> None:
    tools = [_tool("configure", {"settings": {"type": "object"}, "tags": {"type": "array"}})]
    text = ("<tool_call>\n<function=configure>\n<parameter=settings>\n{'theme': 'light', 'beta': True}\n"
            "</parameter>\n<parameter=tags>\n['a', 'b']\n</parameter>\n</function>\n</tool_call>")
    r = repair_message(text, tools, id_factory=ids)
    assert calls_of(r) == [("configure", {"settings": {"theme": "light", "beta": True}, "tags": ["a", "b"]})]
    assert r.errors == []


RF = _tool("read_file", {"path": {"type": "string"}}, ["path"])


def test_deepseek_keeps_complete_calls_before_a_truncated_one() -> None:
    text = ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"path\": \"a.py\"}<｜tool▁call▁end｜>"
            "<｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"path\": \"b.")
    r = repair_message(text, [RF], id_factory=ids)
    assert calls_of(r) == [("read_file", {"path": "a.py"})]
    assert [e.kind for e in r.errors] == ["truncated"]
    assert r.content == "<｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"path\": \"b."
    assert_stream_matches(text, [RF])


def test_kimi_keeps_complete_calls_before_a_truncated_one() -> None:
    text = ("<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>"
            '{"path": "a.py"}<|tool_call_end|><|tool_call_begin|>functions.read_file:1<|tool_call_argument_begin|>'
            '{"path": "b.')
    r = repair_message(text, [RF], id_factory=ids)
    assert calls_of(r) == [("read_file", {"path": "a.py"})]
    assert [e.kind for e in r.errors] == ["truncated"]
    assert_stream_matches(text, [RF])


def test_no_markup_left_in_content() -> None:
    llama4 = "Checking.\n<|python_start|>\n[read_file(path='a.py')]\n<|python_end|>"
    lmstudio = 'Checking.\n[TOOL_REQUEST]\n{"name": "read_file", "arguments": {"path": "a.py"}}\n[END_TOOL_REQUEST]'
    for text in (llama4, lmstudio):
        r = repair_message(text, [RF], id_factory=ids)
        assert calls_of(r) == [("read_file", {"path": "a.py"})]
        assert r.content == "Checking."
        assert_stream_matches(text, [RF])


def test_llama31_stray_quote_before_function_end_is_not_content() -> None:
    """Llama 3.1 left a quote between the arguments and </function> (twiga#63): the call's markup, not prose."""
    tools = [_tool("get_weather", {"city": {"type": "string"}}, ["city"])]
    text = '<function=get_weather>{"city": "New York"}"</function>'
    r = repair_message(text, tools, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"city": "New York"})]
    assert r.content is None and [x.kind for x in r.repairs] == ["json_syntax"]
    assert_stream_matches(text, tools)
    prose = '<function=get_weather>{"city": "New York"} said "</function>'
    assert repair_message(prose, tools).content is not None


def test_closer_after_a_closeless_wrapper_is_not_content() -> None:
    """granite3.2 closed its <function_call> block (the format has no closer); Phi-4-mini writes <|/tool_call|>."""
    search = _tool("web_search", {"search_instruction": {"type": "string"}}, ["search_instruction"])
    text = '<function_call>{"name": "web_search", "arguments": {"search_instruction": "protests in Nepal"}}' \
           "</function_call>##ANSWER##\n\nI have searched the internet."
    r = repair_message(text, [search], id_factory=ids)
    assert calls_of(r) == [("web_search", {"search_instruction": "protests in Nepal"})]
    assert r.content == "##ANSWER##\n\nI have searched the internet."
    assert_stream_matches(text, [search])
    listed = '<|tool_call|>[{"name": "web_search", "arguments": {"search_instruction": "x"}}]\n<|/tool_call|>'
    r = repair_message(listed, [search], id_factory=ids)
    assert calls_of(r) == [("web_search", {"search_instruction": "x"})] and r.content is None
    assert_stream_matches(listed, [search])
