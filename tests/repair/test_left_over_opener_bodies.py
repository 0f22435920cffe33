"""A `<tool_call>` written again after closed `<tool_call>...</tool_call>` blocks, with nothing after it, is markup
left over whatever body the blocks hold: hermes JSON (`{"name": ..., "arguments": {...}}`), GLM-4.5's
`name<arg_key>...</arg_key><arg_value>...</arg_value>` and Qwen3-Coder's `<function=...>` alike. The calls are
made, nothing is reported failed, and the opener leaves the content with their markup (`opening_tag`). An opener
followed by the start of another call is still that call cut off (`truncated`), an opener after no call is still
a cut call, and a call that is not made keeps the opener in its text."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import (
    assert_plain_splits_match,
)
from tests.repair.test_left_over_opener import TOOLS, assert_cut, assert_left_over

PARIS = ("get_weather", {"city": "Paris"})
OSLO = ("get_weather", {"city": "Oslo"})
HERMES = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
HERMES_OSLO = HERMES.replace("Paris", "Oslo")
GLM = "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>"
GLM_OSLO = GLM.replace("Paris", "Oslo")
QWEN = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"

LEFT_OVER = {
    "hermes": (HERMES + "\n<tool_call>", [PARIS]),
    "hermes, glued": (HERMES + "<tool_call>", [PARIS]),
    "hermes, space after": (HERMES + "\n<tool_call>\n  \n", [PARIS]),
    "hermes, one line": ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><tool_call>',
                         [PARIS]),
    "two hermes": (HERMES + "\n" + HERMES_OSLO + "\n<tool_call>", [PARIS, OSLO]),
    "hermes after prose": ("Checking.\n" + HERMES + "\n<tool_call>", [PARIS]),
    "hermes, two calls in the block": (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n<tool_call>', [PARIS, OSLO]),
    "glm": (GLM + "\n<tool_call>", [PARIS]),
    "glm, glued": (GLM + "<tool_call>", [PARIS]),
    "glm, space after": (GLM + "\n<tool_call>\n\n", [PARIS]),
    "two glm": (GLM + "\n" + GLM_OSLO + "\n<tool_call>", [PARIS, OSLO]),
    "glm after prose": ("Let me check.\n\n" + GLM + "\n<tool_call>", [PARIS]),
    "hermes then glm": (HERMES + "\n" + GLM_OSLO + "\n<tool_call>", [PARIS, OSLO]),
    "glm then qwen3-coder": (GLM_OSLO + "\n" + QWEN + "\n<tool_call>", [OSLO, PARIS]),
}


@pytest.mark.parametrize("text, calls", LEFT_OVER.values(), ids=LEFT_OVER.keys())
def test_an_opener_left_after_closed_blocks_is_no_cut_call(text: str, calls: list[Any]) -> None:
    assert_left_over(text, calls)


def test_the_opener_left_in_a_think_block_goes_with_its_calls() -> None:
    """Inside `<think>` the block's calls are read the same way (and promoted when none is made outside it)."""
    text = "<think>" + GLM + "\n<tool_call></think>Done."
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [PARIS] and r.errors == [] and r.content == "Done."
    assert_stream_matches(text, TOOLS, seed=5)


CUT = {
    "hermes, then a brace": (HERMES + "\n<tool_call>\n{", [PARIS]),
    "hermes, then a name": (HERMES + '\n<tool_call>\n{"name": "get_weather"', [PARIS]),
    "hermes, then a cut value": (HERMES + '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Os',
                                 [PARIS]),
    "glm, then a cut key": (GLM + "\n<tool_call>get_weather\n<arg_key>ci", [PARIS]),
    "glm, then a cut value": (GLM + "\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Os", [PARIS]),
    "glm, then a key": (GLM + "\n<tool_call>get_weather\n<arg_key>", [PARIS]),
    "hermes, then a glm value": (HERMES + "\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Os",
                                 [PARIS]),
}


@pytest.mark.parametrize("text, calls", CUT.values(), ids=CUT.keys())
def test_an_opener_followed_by_a_cut_call_is_still_cut(text: str, calls: list[Any]) -> None:
    assert_cut(text, calls, "<tool_call>")


@pytest.mark.parametrize("text", [
    "<tool_call>",
    "Let me look.\n<tool_call>\n",
    HERMES.replace("</tool_call>", "") + "So.\n<tool_call>",
], ids=["alone", "after prose", "after an unclosed block and prose"])
def test_an_opener_after_no_closed_block_is_a_cut_call(text: str) -> None:
    """Nothing before it is a closed block whose calls are made: the opener is reported as a call cut off."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert "truncated" in [e.kind for e in r.errors] and r.outcome == "failed"
    assert r.content is not None and r.content.rstrip().endswith("<tool_call>")
    assert_stream_matches(text, TOOLS, seed=5)
    assert_plain_splits_match(text, TOOLS)


@pytest.mark.parametrize("text, error", [
    (HERMES.replace("city", "town") + "\n<tool_call>", "schema_mismatch"),
    (GLM.replace("city", "town") + "\n<tool_call>", "schema_mismatch"),
    (HERMES.replace("get_weather", "nope") + "\n<tool_call>", "unknown_name"),
    (GLM.replace("get_weather", "nope") + "\n<tool_call>", "unknown_name"),
], ids=["hermes, refused", "glm, refused", "hermes, no such tool", "glm, no such tool"])
def test_a_failing_call_keeps_the_opener_in_its_text(text: str, error: str) -> None:
    """When the call cannot be made, its block's text, the opener with it, stays in the content as written, and
    only the call's failure is reported."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == [error]
    assert r.content == text
    assert_stream_matches(text, TOOLS, seed=5)
    assert_plain_splits_match(text, TOOLS)


def test_a_block_that_failed_to_parse_leaves_the_opener_a_cut_call() -> None:
    """A closed block whose body is not a call (broken JSON) is no complete call: the opener after it is still cut."""
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": }\n</tool_call>\n<tool_call>'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and "truncated" in [e.kind for e in r.errors]
    assert_stream_matches(text, TOOLS, seed=5)
