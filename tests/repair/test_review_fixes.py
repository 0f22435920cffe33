"""Harmony recipients named with spaces resolve to the longest declared name their words spell, and hermes
blocks whose next call opens with `<tool_call>` in the element form (`<function>name</function>` then a JSON
object) are two calls; prose and near misses stay text. One-shot and streamed answers agree."""

from __future__ import annotations

from typing import Any

import pytest

from repair import RepairResult, repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids, stream
from tests.repair.incremental_helpers import assert_incremental_matches, expected, stream_incremental


def _tool(name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": props}}}


_S = {"type": "string"}


def _tools(*names: str) -> list[dict[str, Any]]:
    return [_tool(name, {"query": _S}) for name in names]


def _agrees(text: str, tools: Any) -> RepairResult:
    """The one-shot answer, which the stream gives for the text in two pieces at every offset, in 1-character
    pieces and in the helpers' random pieces, plain and incremental."""
    r = assert_stream_matches(text, tools, seed=8)
    assert_incremental_matches(text, tools, seed=8)
    _, calls = expected(text, tools)
    for i in range(1, len(text)):
        pieces = [text[:i], text[i:]]
        got, content, reasoning, _ = stream(pieces, tools)
        assert got == r, pieces
        assert content == (r.content or "") and reasoning == (r.reasoning_content or ""), pieces
        sr, assembled = stream_incremental(pieces, tools)
        assert not sr.after_header
        assert (assembled.content, assembled.call_list()) == (r.content or "", calls), pieces
    return r


def _harmony(recipient: str, tail: str = " <|constrain|>json") -> str:
    return (f'<|start|>assistant<|channel|>commentary to=functions.{recipient}{tail}<|message|>'
            '{"query": "x"}<|call|>')


@pytest.mark.parametrize(("declared", "recipient"), [
    (("Web Search", "Web Search Images"), "Web Search Images"),
    (("Web Search Images", "Web Search"), "Web Search Images"),
    (("Web Search", "Web Search Images"), "Web Search"),
    (("Read", "Read File"), "Read File"),
    (("Read", "Read File"), "Read"),
    (("web", "Web Search"), "Web Search"),
])
def test_harmony_recipient_is_the_longest_declared_name_its_words_spell(declared: tuple[str, ...],
                                                                       recipient: str) -> None:
    """'Web Search Images' beside 'Web Search' called the shorter tool, the first name the words spelled."""
    text = _harmony(recipient)
    r = _agrees(text, _tools(*declared))
    assert calls_of(r) == [(recipient, {"query": "x"})]
    assert r.errors == [] and not r.content


@pytest.mark.parametrize("tail", [" <|constrain|>json", "<|constrain|>json", " json", "", " ", "\tjson "])
def test_harmony_spaced_recipient_ends_where_its_name_does(tail: str) -> None:
    """Whatever follows the name (the constraint token, the bare word json, nothing) is no part of it."""
    r = _agrees(_harmony("Read File", tail), _tools("Read", "Read File"))
    assert calls_of(r) == [("Read File", {"query": "x"})]
    assert r.errors == [] and not r.content


def test_harmony_word_after_the_name_is_not_eaten() -> None:
    """'Read json' is the tool Read with its constraint written as a word, not a name 'Read json'."""
    r = _agrees(_harmony("Read", " json"), _tools("Read", "Read File"))
    assert calls_of(r) == [("Read", {"query": "x"})]


def test_harmony_recipient_in_the_role_header_ends_at_the_channel() -> None:
    """A recipient written before <|channel|> ends there: the words after the channel do not run on into its
    name, even where they would spell a declared one."""
    text = ('<|start|>assistant to=functions.Read<|channel|>commentary json<|message|>{"query": "x"}<|call|>')
    r = _agrees(text, _tools("Read", "Read json"))
    assert calls_of(r) == [("Read", {"query": "x"})]


def test_harmony_recipient_words_that_spell_no_longer_name_stay_as_before() -> None:
    """Words that spell no declared name (not even the first) leave the name unknown and invent no call."""
    text = _harmony("Web Lookup Images")
    r = _agrees(text, _tools("Web Search", "Web Search Images"))
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["unknown_name"]
    assert r.content == text


@pytest.mark.parametrize("text", [
    "The docs say the header reads commentary to=functions.Web Search Images then the JSON.",
    "Use `to=functions.Web Search Images` as the recipient when you search for images.",
])
def test_harmony_recipient_in_prose_stays_text(text: str) -> None:
    r = _agrees(text, _tools("Web Search", "Web Search Images"))
    assert r.tool_calls == [] and r.content == text


TERMINAL = [_tool("terminal", {"command": _S})]


def _element(command: str) -> str:
    return f'<tool_call>\n<function>terminal</function>\n{{"command": "{command}"}}\n'


def _json(command: str) -> str:
    return f'<tool_call>\n{{"name": "terminal", "arguments": {{"command": "{command}"}}}}\n'


@pytest.mark.parametrize("commands", [("a", "b"), ("a", "b", "c")])
def test_hermes_element_form_opening_the_next_call_is_a_call(commands: tuple[str, ...]) -> None:
    """`<tool_call>` that opens the next element-form call is no closing tag: each block is a call, as in the
    JSON form of the same text."""
    text = "".join(_element(c) for c in commands) + "</tool_call>"
    r = _agrees(text, TERMINAL)
    assert calls_of(r) == [("terminal", {"command": c}) for c in commands]
    assert not r.content and r.errors == []
    same = repair_message("".join(_json(c) for c in commands) + "</tool_call>", TERMINAL, id_factory=ids)
    assert (calls_of(r), r.content, r.repairs) == (calls_of(same), same.content, same.repairs)


def test_hermes_element_form_after_a_json_form_call() -> None:
    text = "Running both.\n" + _json("a") + _element("b") + "</tool_call>"
    r = _agrees(text, TERMINAL)
    assert calls_of(r) == [("terminal", {"command": "a"}), ("terminal", {"command": "b"})]
    assert r.content == "Running both."


def test_hermes_element_form_naming_no_tool_after_a_call_stays_text() -> None:
    """The second block names no declared tool: it is no call and stays text whole, its opener too, as the JSON
    form's block does."""
    block = '<tool_call>\n<function>rm_everything</function>\n{"path": "/"}\n</tool_call>'
    r = _agrees(_element("a") + block, TERMINAL)
    assert calls_of(r) == [("terminal", {"command": "a"})]
    assert r.content == block and [e.kind for e in r.errors] == ["unknown_name"]
    same = repair_message(_element("a") + '<tool_call>\n{"name": "rm_everything", "arguments": {"path": "/"}}\n'
                          '</tool_call>', TERMINAL, id_factory=ids)
    assert (r.errors, r.repairs) == (same.errors, same.repairs)


@pytest.mark.parametrize("after", [
    "Done, the port is free.",
    "\n<function>terminal</function> then ls",
    "\n<function>terminal</function>\nnothing more",
    "\n<function>rm -rf</function>\n{}",
])
def test_hermes_opening_tag_as_closing_before_no_call_stays_so(after: str) -> None:
    """After a call closed by `<tool_call>`, an element with no JSON object after it (or no element at all) starts
    no call: the opener is the first call's closing tag and what follows is content, as before."""
    text = _element("a") + "<tool_call>" + after
    r = _agrees(text, TERMINAL)
    assert calls_of(r) == [("terminal", {"command": "a"})]
    assert r.content == after.strip()
    assert [i.detail for i in r.repairs] == ["opening tag used as the closing tag"]


@pytest.mark.parametrize("text", [
    "Write <tool_call>, then <function>terminal</function> and the arguments as a JSON object.",
    "The format: `<tool_call>\n<function>NAME</function>\n{...}\n</tool_call>`, one block per call.",
])
def test_hermes_element_form_in_prose_stays_text(text: str) -> None:
    r = _agrees(text, TERMINAL)
    assert r.tool_calls == [] and r.content == text
