"""An XML-style value holding the format's own closing tag (a model writing an XML file, or editing a parser):
the value runs to the last closer before the call's next parameter or its end, byte for byte, never to the
first one (which cut the value and left the rest and the call's markup in the content)."""

from __future__ import annotations

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

WRITE = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"]}}}]


def _one(text: str) -> dict[str, str]:
    r = repair_message(text, WRITE, id_factory=ids)
    assert r.errors == [], r.errors
    (call,) = calls_of(r)
    assert call[0] == "write_file"
    assert not r.content, r.content
    assert_stream_matches(text, WRITE)
    return call[1]


def test_minimax_value_holding_parameter_tags() -> None:
    xml = "<parameter>\n  <hello></hello>\n</parameter>"
    text = ('<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">test.xml</parameter>\n'
            f'<parameter name="content">{xml}</parameter>\n</invoke>\n</minimax:tool_call>')
    assert _one(text) == {"path": "test.xml", "content": xml}


def test_minimax_closer_in_a_value_before_the_next_parameter() -> None:
    text = ('<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="content">a</parameter>b'
            '</parameter>\n<parameter name="path">x.xml</parameter>\n</invoke>\n</minimax:tool_call>')
    assert _one(text) == {"path": "x.xml", "content": "a</parameter>b"}


def test_dsml_value_holding_its_closer() -> None:
    text = ('<｜DSML｜function_calls>\n<｜DSML｜invoke name="write_file">\n'
            '<｜DSML｜parameter name="path" string="true">p.py</｜DSML｜parameter>\n'
            '<｜DSML｜parameter name="content" string="true">s = "</｜DSML｜parameter>"</｜DSML｜parameter>\n'
            '</｜DSML｜invoke>\n</｜DSML｜function_calls>')
    assert _one(text) == {"path": "p.py", "content": 's = "</｜DSML｜parameter>"'}


def test_glm_value_holding_arg_value_closer() -> None:
    text = ('<tool_call>write_file<arg_key>path</arg_key><arg_value>parser.py</arg_value>'
            '<arg_key>content</arg_key><arg_value>END = "</arg_value>"</arg_value></tool_call>')
    assert _one(text) == {"path": "parser.py", "content": 'END = "</arg_value>"'}


def test_glm_closer_in_a_value_before_the_next_key() -> None:
    text = ('<tool_call>write_file\n<arg_key>content</arg_key>\n<arg_value>a</arg_value>b</arg_value>\n'
            '<arg_key>path</arg_key>\n<arg_value>p</arg_value>\n</tool_call>')
    assert _one(text) == {"path": "p", "content": "a</arg_value>b"}


def test_qwen3_coder_value_holding_parameter_closer() -> None:
    text = ('<tool_call>\n<function=write_file>\n<parameter=path>\nt.py\n</parameter>\n<parameter=content>\n'
            'x = "</parameter>"\n</parameter>\n</function>\n</tool_call>')
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "t.py", "content": 'x = "</parameter>"'})]
    assert r.errors == [] and r.repairs == [] and not r.content
    assert_stream_matches(text, WRITE)


def test_qwen3_coder_value_holding_function_closer() -> None:
    code = 'END = "</function>"\nP = "</parameter>"'
    text = ('<tool_call>\n<function=write_file>\n<parameter=path>\nt.py\n</parameter>\n<parameter=content>\n'
            f'{code}\n</parameter>\n</function>\n</tool_call>')
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "t.py", "content": code})]
    assert r.errors == [] and r.repairs == [] and not r.content


def test_a_missing_closer_is_still_repaired() -> None:
    text = ('<tool_call>\n<function=write_file>\n<parameter=path>\nt.py\n<parameter=content>\nhi\n</parameter>\n'
            '</function>\n</tool_call>')
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "t.py", "content": "hi"})]
    assert [x.kind for x in r.repairs] == ["closing_tag"]


def test_a_closer_in_prose_after_the_call_is_not_taken() -> None:
    text = ('<tool_call>\n<function=write_file>\n<parameter=path>\nt.py\n</parameter>\n<parameter=content>\nhi\n'
            '</parameter>\n</function>\nThen I close it with </parameter> as usual.')
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "t.py", "content": "hi"})]
    assert r.content == "Then I close it with </parameter> as usual."
    assert_stream_matches(text, WRITE)


def test_many_parameters_named_by_tags_stay_linear() -> None:
    import time
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    text = ']<]minimax[>[<tool_call><invoke name="f">' + "<q>a</q>" * 20000
    t0 = time.process_time()
    r = repair_message(text, tools)
    assert r.tool_calls == [] and time.process_time() - t0 < 1.0
