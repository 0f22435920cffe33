"""An XML-style value holding the format's own closing tag (a model writing an XML file, or editing a parser):
the value runs to the last closer before the call's next parameter or its end, byte for byte, never to the
first one (which cut the value and left the rest and the call's markup in the content)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from repair import repair_message
from repair.formats import glm45, invoke, qwen3_coder
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches
from tests.repair.work import Work

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


def test_many_parameters_named_by_tags_stay_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """20000 parameters named by their tags: each looks at its own closing tag only (each used to look at every
    closing tag after it for the last one), and the forward searches read the text a few times in all."""
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    tags = 20000
    text = ']<]minimax[>[<tool_call><invoke name="f">' + "<q>a</q>" * tags
    work = Work(monkeypatch, limit=16 * len(text))
    r = repair_message(text, tools)
    assert r.tool_calls == []
    assert work.closers <= tags
    assert work.scanned <= 8 * len(text)


# A value holding the call's wrapper (or its end marker): Rapid-MLX #1515 measured qwen3.6 writing "A tool call block
# ends with </tool_call> on its own." and the value cut at that tag; ai-dynamo/frontend-crates#245 (MiniMax-M2)
NOTE = "A tool call block ends with </tool_call> on its own."
QWEN = ("<tool_call>\n<function=write_file>\n<parameter=path>\nn.md\n</parameter>\n<parameter=content>\n{}\n"
        "</parameter>\n")
WRAPPER_IN_A_VALUE = {
    "qwen3_coder": (QWEN + "</function>\n</tool_call>", NOTE),
    "qwen3_coder_no_opener": (QWEN[len("<tool_call>\n"):] + "</function>\n</tool_call>", NOTE),
    "seed_oss": (QWEN.replace("<tool_call>", "<seed:tool_call>") + "</function>\n</seed:tool_call>",
                 "ends with </seed:tool_call> on its own"),
    "glm45": ("<tool_call>write_file<arg_key>path</arg_key><arg_value>n.md</arg_value><arg_key>content</arg_key>"
              "<arg_value>{}</arg_value></tool_call>", "A call ends with </tool_call> here."),
    "longcat": ("<longcat_tool_call>write_file<longcat_arg_key>path</longcat_arg_key><longcat_arg_value>n.md"
                "</longcat_arg_value><longcat_arg_key>content</longcat_arg_key><longcat_arg_value>{}"
                "</longcat_arg_value></longcat_tool_call>", "ends with </longcat_tool_call> here"),
    "hy_v3": ("<tool_calls><tool_call>write_file<tool_sep><arg_key>path</arg_key><arg_value>n.md</arg_value>"
              "<arg_key>content</arg_key><arg_value>{}</arg_value></tool_call></tool_calls>", "a </tool_call> b"),
    "minimax_m2": ('<minimax:tool_call><invoke name="write_file"><parameter name="path">n.md</parameter>'
                   '<parameter name="content">{}</parameter></invoke></minimax:tool_call>',
                   "Montréal </minimax:tool_call> café"),
    "minimax_m2_invoke_end": ('<minimax:tool_call><invoke name="write_file"><parameter name="path">n.md</parameter>'
                              '<parameter name="content">{}</parameter></invoke></minimax:tool_call>',
                              "a </invoke></minimax:tool_call> b"),
    "minimax_m3": (']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="write_file">\n]<]minimax[>[<path>n.md'
                   ']<]minimax[>[</path>\n]<]minimax[>[<content>{}]<]minimax[>[</content>\n]<]minimax[>[</invoke>\n'
                   ']<]minimax[>[</tool_call>', "a </tool_call> b"),
    "dsml": ('<｜DSML｜function_calls><｜DSML｜invoke name="write_file"><｜DSML｜parameter name="path" string="true">'
             'n.md</｜DSML｜parameter><｜DSML｜parameter name="content" string="true">{}</｜DSML｜parameter>'
             "</｜DSML｜invoke></｜DSML｜function_calls>", "a </｜DSML｜function_calls> b"),
}


@pytest.mark.parametrize("family", list(WRAPPER_IN_A_VALUE))
def test_the_wrappers_closer_in_a_value_is_data(family: str) -> None:
    """It was taken for the block's end: the call went out with its value cut there, its markup left in the
    content. The block ends at the first such closer that the call's own end markup comes right before."""
    shape, value = WRAPPER_IN_A_VALUE[family]
    text = shape.format(value)
    assert _one(text) == {"path": "n.md", "content": value}
    assert_incremental_matches(text, WRITE)


def test_the_wrappers_closer_in_a_value_then_another_call() -> None:
    text = (QWEN.format("x </tool_call> y") + "</function>\n</tool_call>\n" + QWEN.format("z")
            + "</function>\n</tool_call>")
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": "x </tool_call> y"}),
                           ("write_file", {"path": "n.md", "content": "z"})]
    assert r.errors == [] and not r.content
    assert_stream_matches(text, WRITE)


def test_the_wrappers_closer_in_a_value_of_a_call_whose_own_closer_is_cut_off() -> None:
    """The text ends after </function>: the call is whole, the block's closer missing (`truncated`), as without
    the tag in the value."""
    text = QWEN.format("x </tool_call> y") + "</function>"
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": "x </tool_call> y"})]
    assert [x.kind for x in r.repairs] == ["truncated"] and not r.content
    assert_stream_matches(text, WRITE)


def test_a_closer_in_prose_after_a_damaged_call_is_not_taken() -> None:
    """A call without its </parameter> and </function>, then prose naming the closers: the call ends at the first
    </tool_call>, as before, and the prose stays."""
    text = ("<tool_call>\n<function=write_file>\n<parameter=path>\nn.md\n</parameter>\n<parameter=content>\nx\n"
            "</tool_call>\nNote: end with </function></tool_call> always.")
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": "x"})]
    assert r.content == "Note: end with </function></tool_call> always."
    assert_stream_matches(text, WRITE)


def _counting(calls: list[int], read: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any) -> Any:
        calls.append(1)
        return read(*args)
    return counted


@pytest.mark.parametrize("family", ["qwen3_coder", "glm45", "minimax_m2"])
def test_many_wrapper_closers_in_a_value_read_the_call_at_most_twice(family: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 closers in one value: the block's end is looked for in one pass, and the call read again once (not
    once a closer, which is quadratic)."""
    reads: list[int] = []
    if family == "qwen3_coder":
        monkeypatch.setattr(qwen3_coder, "parse_functions", _counting(reads, qwen3_coder.parse_functions))
    elif family == "glm45":
        monkeypatch.setattr(glm45, "parse_body", _counting(reads, glm45.parse_body))
    else:
        monkeypatch.setattr(invoke, "SPECS", tuple(
            (begin, dataclasses.replace(spec, parse_call=_counting(reads, spec.parse_call)))
            for begin, spec in invoke.SPECS))
    shape, value = WRAPPER_IN_A_VALUE[family]
    closer = "</minimax:tool_call>" if family == "minimax_m2" else "</tool_call>"
    value = "x " + closer * 2000 + " y"
    r = repair_message(shape.format(value), WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": value})]
    assert len(reads) == 2


# The wrapper's closer in a value of a call that also lacks its </function>: the value went out cut at the tag and the
# rest of it, with the call's markup, stayed in the content.
UNENDED = {
    "closer_next": (QWEN.format("x </tool_call> y") + "</tool_call>", ""),
    "prose_after": (QWEN.format("x </tool_call> y") + "</tool_call>\nDone.", "Done."),
    "no_opener": (QWEN.format("x </tool_call> y")[len("<tool_call>\n"):] + "</tool_call>", ""),
    "seed_oss": (QWEN.replace("<tool_call>", "<seed:tool_call>").format("x </seed:tool_call> y")
                 + "</seed:tool_call>", ""),
}


@pytest.mark.parametrize("shape", list(UNENDED))
def test_the_wrappers_closer_in_a_value_of_a_call_without_its_end_tag(shape: str) -> None:
    """The block ends at the first later closer that comes right after a value's </parameter>, when every value
    read that far is closed: only </function> is missing, repaired as it is without the tag in the value."""
    text, content = UNENDED[shape]
    value = "x </seed:tool_call> y" if shape == "seed_oss" else "x </tool_call> y"
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": value})]
    assert "closing_tag" in [x.kind for x in r.repairs] and r.errors == []
    assert (r.content or "") == content
    assert_stream_matches(text, WRITE)
    assert_incremental_matches(text, WRITE)


def test_the_wrappers_closer_in_a_value_of_a_call_without_its_end_tag_then_another_call() -> None:
    text = QWEN.format("x </tool_call> y") + QWEN.format("z") + "</function>\n</tool_call>"
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": "x </tool_call> y"}),
                           ("write_file", {"path": "n.md", "content": "z"})]
    assert r.errors == [] and not r.content
    assert_stream_matches(text, WRITE)


def test_the_wrappers_closer_in_a_value_of_a_call_cut_off_after_a_value() -> None:
    """The text ends after the value's </parameter>: more parameters may have followed, so the call is reported
    `truncated` and its text kept, as without the tag in the value; no call with its value cut at the tag."""
    text = QWEN.format("x </tool_call> y")
    r = repair_message(text, WRITE, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"]
    assert r.content == text
    assert_stream_matches(text, WRITE)


def test_a_damaged_call_before_prose_naming_the_closers_is_read_as_before() -> None:
    """Without </parameter> after the value, nothing shows the value went on: the call ends at the first closer."""
    text = QWEN.format("x")[:-len("</parameter>\n")] + "</tool_call>\nUse </parameter> then </tool_call>."
    r = repair_message(text, WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": "x"})]
    assert r.content == "Use </parameter> then </tool_call>."


def test_many_closers_in_a_value_of_a_call_without_its_end_tag_stay_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    monkeypatch.setattr(qwen3_coder, "parse_functions", _counting(reads, qwen3_coder.parse_functions))
    value = "x " + "</tool_call>" * 2000 + " y"
    r = repair_message(QWEN.format(value) + "</tool_call>", WRITE, id_factory=ids)
    assert calls_of(r) == [("write_file", {"path": "n.md", "content": value})]
    assert len(reads) <= 3
