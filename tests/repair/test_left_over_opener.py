"""A call's opener written again after its complete calls, with nothing after it, is markup left over, not a call
cut off: Qwen3-Coder's `<tool_call>` after a bare `<function=...>...</function>` or after a closed
`<tool_call>...</tool_call>`, and a section's opener after its closed section (MiniMax-M2's `<minimax:tool_call>`).
The calls are made and nothing is reported failed (a failure re-asks the model under `on_failure: retry` and counts
in the metrics); the opener leaves the content with their markup. An opener followed by the start of another call
is still that call cut off, and an opener after no call is still a cut call."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import (
    assert_every_split_matches,
    assert_plain_splits_match,
    assert_sized_stream_matches,
    expected,
    streamed,
)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
PARIS = ("get_weather", {"city": "Paris"})
OSLO = ("get_weather", {"city": "Oslo"})
BARE = "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>"
BARE_OSLO = BARE.replace("Paris", "Oslo")
CLOSED = "<tool_call>\n" + BARE + "\n</tool_call>"
CLOSED_OSLO = "<tool_call>\n" + BARE_OSLO + "\n</tool_call>"
M2_CALL = '<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>'
M2 = "<minimax:tool_call>\n" + M2_CALL + "\n</minimax:tool_call>"

LEFT_OVER = {
    "bare": (BARE + "\n<tool_call>", [PARIS]),
    "bare, glued": (BARE + "<tool_call>", [PARIS]),
    "bare, space after": (BARE + "\n<tool_call>\n  \n", [PARIS]),
    "two bare": (BARE + "\n" + BARE_OSLO + "\n<tool_call>", [PARIS, OSLO]),
    "bare after prose": ("Let me check.\n\n" + BARE + "\n<tool_call>", [PARIS]),
    "closed": (CLOSED + "\n<tool_call>", [PARIS]),
    "closed, glued": (CLOSED + "<tool_call>", [PARIS]),
    "closed, space after": (CLOSED + "\n<tool_call>\n\n", [PARIS]),
    "two closed": (CLOSED + "\n" + CLOSED_OSLO + "\n<tool_call>", [PARIS, OSLO]),
    "closed after prose": ("Checking.\n" + CLOSED + "\n<tool_call>", [PARIS]),
    "minimax section": (M2 + "\n<minimax:tool_call>", [PARIS]),
    "minimax section, glued": (M2 + "<minimax:tool_call>\n", [PARIS]),
    "minimax section after prose": ("Checking.\n" + M2 + "\n<minimax:tool_call>", [PARIS]),
}


def assert_left_over(text: str, calls: list[Any]) -> None:
    """The opener at the end of `text` is markup left over: `calls` made, nothing failed, one-shot and streamed."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == calls
    assert r.errors == [] and r.outcome == "repaired"
    assert "opening_tag" in [x.kind for x in r.repairs]
    prose = text[:text.index("<")].strip()
    assert r.content == (prose or None)  # the opener leaves the content with the calls' markup
    for incremental in (False, True):
        for pieces in ([text], list(text), [text[:-3], text[-3:]]):
            got = streamed(pieces, TOOLS, incremental)
            assert got.errors == [] and got.outcome == "repaired", (incremental, pieces)
            assert calls_of(got) == calls and got.content == r.content
    assert_every_split_matches(text, TOOLS, seed=5)
    assert_plain_splits_match(text, TOOLS)
    for sizes in ([1, 2], [3], [5, 1, 7], [11]):
        assert_sized_stream_matches(text, sizes, TOOLS, strict=True)


@pytest.mark.parametrize("text, calls", LEFT_OVER.values(), ids=LEFT_OVER.keys())
def test_an_opener_left_after_complete_calls_is_no_cut_call(text: str, calls: list[Any]) -> None:
    assert_left_over(text, calls)


CUT = {
    "bare, then a header": (BARE + "\n<tool_call>\n<function=get_weather>", [PARIS]),
    "bare, then a cut value": (BARE + "\n<tool_call>\n<function=get_weather>\n<parameter=city>\nOs", [PARIS]),
    "closed, then a header": (CLOSED + "\n<tool_call>\n<function=get_weather>\n", [PARIS]),
    "closed, then a cut value": (CLOSED + "\n<tool_call>\n<function=get_weather>\n<parameter=city>\nOs", [PARIS]),
    "closed, then a cut header": (CLOSED + "\n<tool_call>\n<function=get_we", [PARIS]),
    "minimax, then an invoke": (M2 + '\n<minimax:tool_call>\n<invoke name="get_weather">\n', [PARIS]),
    "minimax, then a cut value": (M2 + '\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Os',
                                  [PARIS]),
}


def assert_cut(text: str, calls: list[Any], opener: str = "<") -> None:
    """The opener at the end of `text` begins a call cut off: `calls` made, `truncated`, the cut call's text (from
    `opener`) left in the content; one-shot and streamed alike."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == calls
    assert [e.kind for e in r.errors] == ["truncated"] and r.outcome == "failed"
    assert r.content is not None and r.content.startswith(opener) and r.content.endswith(text[-5:].strip())
    assert_stream_matches(text, TOOLS, seed=5)
    assert_plain_splits_match(text, TOOLS)
    for sizes in ([1, 2], [4], [9]):
        assert_sized_stream_matches(text, sizes, TOOLS)


@pytest.mark.parametrize("text, calls", CUT.values(), ids=CUT.keys())
def test_an_opener_followed_by_a_cut_call_is_still_cut(text: str, calls: list[Any]) -> None:
    assert_cut(text, calls)


NO_CALL = {
    "alone": "<tool_call>",
    "after prose": "Let me look.\n<tool_call>\n",
    "minimax alone": "<minimax:tool_call>",
    "minimax after prose": "Let me look.\n<minimax:tool_call>",
}


@pytest.mark.parametrize("text", NO_CALL.values(), ids=NO_CALL.keys())
def test_an_opener_after_no_complete_call_is_a_cut_call(text: str) -> None:
    """Nothing before it is a call that is made: the opener is reported as a call cut off, as before."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and "truncated" in [e.kind for e in r.errors] and r.outcome == "failed"
    assert r.content is not None and r.content.rstrip().endswith("tool_call>")
    assert_stream_matches(text, TOOLS, seed=5)
    assert_plain_splits_match(text, TOOLS)


@pytest.mark.parametrize("text", [
    BARE.replace("Paris", "Paris</parameter>\n<parameter=city>") + "\n<tool_call>",
    CLOSED.replace("</function>", "") + "\n<tool_call>",
], ids=["bare, a parameter twice", "closed, its </function> missing"])
def test_the_opener_after_repaired_calls_goes_with_them(text: str) -> None:
    """Calls read with other repairs (a missing </function>) still take the opener after them as theirs."""
    r, _ = expected(text, TOOLS)
    assert "truncated" not in [e.kind for e in r.errors]
    assert_stream_matches(text, TOOLS, seed=5)


@pytest.mark.parametrize("text, error", [
    (BARE.replace("city", "town") + "\n<tool_call>", "schema_mismatch"),
    (CLOSED.replace("city", "town") + "\n<tool_call>", "schema_mismatch"),
    (M2.replace("city", "town") + "\n<minimax:tool_call>", "schema_mismatch"),
    (BARE.replace("get_weather", "nope") + "\n<tool_call>", "unknown_name"),
    (CLOSED.replace("get_weather", "nope") + "\n<tool_call>", "unknown_name"),
], ids=["bare, refused", "closed, refused", "minimax, refused", "bare, no such tool", "closed, no such tool"])
def test_a_failing_call_keeps_the_opener_in_its_text(text: str, error: str) -> None:
    """When the call cannot be made (its arguments refused, its name no declared tool's), its block's text, the
    opener with it, stays in the content as written, and only the call's failure is reported."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == [error]
    assert r.content == text
    assert_stream_matches(text, TOOLS, seed=5)
    assert_plain_splits_match(text, TOOLS)
