"""A whole answer's tool_use `input` is the call's arguments as `arguments_object` reads them, whichever parser
reads them: strict JSON by orjson, what orjson would read otherwise (integers past 64 bits) or refuses (constants,
lone surrogates, a BOM, JSON that is not strict) by the standard library's way and its repairs."""

from __future__ import annotations

import json

import pytest

from router.dialects.anthropic_in import input_object, to_message
from router.dialects.common import arguments_object

CASES = [
    '{"a": 1, "b": [1, 2.50, -0.0, 1E5, 5e-324, 1.0000000000000001, true, null], "c": {"d": "é🙂\\n"}}',
    '{"a": 1, "a": 2, "b": 3}',  # the last of a repeated key, in the first one's place
    '{"a": 123456789012345678901}', '{"a": -9223372036854775809}', '{"a": 18446744073709551615}',
    '{"a": 9223372036854775808}', '{"a": NaN}', '{"a": -Infinity}', '{"a": 1e400}',
    '{"a": "\\ud800"}', '{"a": "\\ud83d\\ude00"}', '{"a": "\ud800"}', '\ufeff{"a": 1}', '{"a": "\x01"}',
    ' {"a": 1} \n', '{"a": 1}{"b": 2}', '{"a": 1', '{"a": 1, "b": "cut', "{'a': 1,}", '[1]', '"x"', "", "  ",
    '{"a": ' * 1100 + "1" + "}" * 1100,
]


@pytest.mark.parametrize("arguments", CASES)
def test_input_object_reads_as_arguments_object_does(arguments: str) -> None:
    want = arguments_object(arguments)
    got = input_object(arguments)
    assert json.dumps(got) == json.dumps(want) and list(got) == list(want)
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


@pytest.mark.parametrize("arguments", [{"a": 1}, None, 3])
def test_arguments_that_are_not_text(arguments: object) -> None:
    assert input_object(arguments) == arguments_object(arguments)


@pytest.mark.parametrize(("content", "refusal", "text"), [
    ("Hello", None, "Hello"), ("  \n", None, None), ("", None, None), (None, None, None),
    ("Hi", "No.", "Hi\n\nNo."), (" ", "No.", "No."), ("\u2003", None, None),
])
def test_the_text_block_of_a_whole_answer(content: str | None, refusal: str | None, text: str | None) -> None:
    msg: dict[str, object] = {"role": "assistant", "content": content}
    if refusal is not None:
        msg["refusal"] = refusal
    doc = {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}
    blocks = to_message(doc, "m", [])["content"]
    assert blocks == ([{"type": "text", "text": text}] if text is not None else [])
