"""Gemma 4 arguments written `key=value` (`call:write_docx{content:<|"|>...<|"|>,save_as='report.docx'}`, ollama
#17882): read when every key is a declared parameter and every value a quoted string, a number, a boolean or null;
anything else stays `invalid_json` with the text kept."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

DOCX = {"type": "function", "function": {"name": "write_docx", "parameters": {
    "type": "object", "properties": {"content": {"type": "string"}, "save_as": {"type": "string"},
                                     "pages": {"type": "integer"}, "draft": {"type": "boolean"},
                                     "note": {"type": ["string", "null"]}},
    "required": ["save_as"]}}}
TOOLS = [DOCX]


def _call(body: str) -> str:
    return "<|tool_call>call:write_docx{" + body + "}<tool_call|>"


@pytest.mark.parametrize(("body", "args"), [
    ("content:<|\"|>Quarterly report<|\"|>,save_as='report.docx'", {"content": "Quarterly report",
                                                                    "save_as": "report.docx"}),
    ('content:<|"|>Q3<|"|>,save_as="report.docx"', {"content": "Q3", "save_as": "report.docx"}),
    ("save_as='a, b=c.docx', pages=3, draft=true, note=null", {"save_as": "a, b=c.docx", "pages": 3,
                                                               "draft": True, "note": None}),
    ("save_as=<|\"|>report.docx<|\"|>", {"save_as": "report.docx"}),
])
def test_key_equals_value_is_read(body: str, args: dict[str, object]) -> None:
    text = "Saving it." + _call(body)
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("write_docx", args)]
    assert r.content == "Saving it." and r.errors == []
    assert [x.kind for x in r.repairs] == ["json_syntax"]
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize("body", [
    "file='report.docx'",                 # not a declared parameter
    "save_as=report.docx",                # an unquoted word
    "save_as='report.docx',save_as='b'",  # a key twice
    "save_as='it\\'s.docx'",              # an escape inside single quotes
])
def test_other_assignments_stay_invalid(body: str) -> None:
    text = _call(body)
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and r.content == text and [e.kind for e in r.errors] == ["invalid_json"]
    assert_stream_matches(text, TOOLS)


def test_stripped_call_with_assignments_on_its_own_line() -> None:
    text = "Saving it.\ncall:write_docx{save_as='report.docx',pages=2}"
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("write_docx", {"save_as": "report.docx", "pages": 2})] and r.content == "Saving it."
    assert_stream_matches(text, TOOLS)
