"""`repair_message(..., canonical=True)` gives every call's arguments as `canonical_arguments` would make them
from the plain result, while decoding them once: checked on the whole regression corpus and on structured calls
whose wire arguments take each path (passed on, repaired, coerced, padded, not encodable)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from repair import repair_message
from repair.incremental import canonical_arguments
from tests.repair.regression import load

TOOLS = [{"type": "function", "function": {"name": "run", "parameters": {
    "type": "object", "properties": {"n": {"type": "integer"}, "cmd": {"type": "string"}, "x": {"type": "number"},
                                     "opts": {"type": "object"}}}}}]


def _both(text: str | None, tools: Any, calls: list[dict[str, Any]] | None = None, **opts: Any) -> None:
    plain = repair_message(text, tools, tool_calls=calls, id_factory=lambda k: f"id{k}", **opts)
    once = repair_message(text, tools, tool_calls=calls, id_factory=lambda k: f"id{k}", canonical=True, **opts)
    expected = [{**c, "function": {**c["function"], "arguments": canonical_arguments(c["function"]["arguments"])}}
                for c in plain.tool_calls]
    assert once.tool_calls == expected
    assert (once.content, once.reasoning_content, once.repairs, once.errors, once.format) == \
        (plain.content, plain.reasoning_content, plain.repairs, plain.errors, plain.format)


@pytest.mark.parametrize("case", load(), ids=lambda c: c.id)
def test_corpus_case(case: Any) -> None:
    _both(case.text, case.tools)


WIRE = [
    '{"n": 1, "cmd": "ls"}',  # valid: passed on as it was
    '{"n":1,"cmd":"l\\u0073 \\u00e9"}',  # valid, written another way: re-encoded
    '  {"n": 1}\n',  # JSON whitespace around it
    '\u00a0{"n": 1}\u00a0',  # not JSON whitespace: canonical_arguments keeps the text
    '{"n": "7"}',  # coerced
    '{"n": 1, "cmd": "a",}',  # repaired syntax
    '"{\\"n\\": 2}"',  # double-encoded
    '{"x": 1e400}',  # decodes to inf: not encodable, kept
    '{"x": 1.50, "opts": {"a": [1, 2.0, -0.0, 1E3], "b": null, "c": "\U0001f600"}}',
    '{"n": 1, "n": 2}',  # duplicate key: the last one
    '',
    '[1, 2]',
]


@pytest.mark.parametrize("args", WIRE)
def test_wire_arguments(args: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "run", "arguments": args}}
    _both(None, TOOLS, [call])
    _both("text first", TOOLS, [call], mode="detect")


def test_text_call_and_object_arguments() -> None:
    _both('<tool_call>\n{"name": "run", "arguments": {"n": "3", "cmd": "x"}}\n</tool_call>', TOOLS)
    _both(None, TOOLS, [{"id": "c", "type": "function", "function": {"name": "run", "arguments": {"n": 4}}}])
    assert json.loads(repair_message(None, TOOLS, tool_calls=[{"id": "c", "type": "function", "function": {
        "name": "run", "arguments": '{"n":1}'}}], canonical=True).tool_calls[0]["function"]["arguments"]) == {"n": 1}
