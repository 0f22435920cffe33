"""A section opener written after a bare call, with nothing after it (MiniMax-M2.5 writing `<minimax:tool_call>`
after its `<invoke>` instead of before it), is markup left over, not a call cut off: the call is made and nothing
is reported failed (a failure re-asks the model under `on_failure: retry` and counts in the metrics). An opener
followed by the start of another call is still that call cut off."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches, streamed

TOOLS = [{"type": "function", "function": {"name": "web_extract", "parameters": {
    "type": "object", "properties": {"urls": {"type": "array", "items": {"type": "string"}}}, "required": ["urls"]}}}]
URLS = ["https://arxiv.org/abs/2106.09685"]
# w1913 (hermes-agent#28647): the parameter tag misspelt too
REPORTED = ('<invoke name="web_extract">\n<paramete name="urls">["https://arxiv.org/abs/2106.09685"]</paramete>\n'
            "</invoke>\n<minimax:tool_call>")
SPELT = REPORTED.replace("paramete", "parameter")


@pytest.mark.parametrize("text", [REPORTED, SPELT, SPELT + "\n", SPELT + " \n\n", SPELT.replace(
    "</invoke>\n<minimax", "</invoke><minimax")], ids=["reported", "spelt", "newline", "spaces", "glued"])
def test_an_opener_left_after_the_call_is_no_cut_call(text: str) -> None:
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("web_extract", {"urls": URLS})]
    assert r.errors == [] and r.outcome == "repaired"
    assert r.content is None  # the opener is the call's markup: it leaves the content with it
    assert_stream_matches(text, TOOLS, seed=3)
    assert_incremental_matches(text, TOOLS, seed=3)
    for incremental in (False, True):
        for pieces in ([text], list(text), [text[:-3], text[-3:]]):
            got = streamed(pieces, TOOLS, incremental)
            assert got.errors == [] and got.outcome == "repaired", (incremental, pieces)
            assert calls_of(got) == [("web_extract", {"urls": URLS})]


@pytest.mark.parametrize("cut", [
    '\n<invoke name="web_extract">\n<parameter name="urls">["https:',
    '\n<invoke name="web_extract">\n',
    '<invoke name="web_extract">',
], ids=["inside a value", "after its tag", "its tag glued"])
def test_an_opener_followed_by_a_cut_call_is_still_cut(cut: str) -> None:
    text = SPELT + cut
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("web_extract", {"urls": URLS})]
    assert [e.kind for e in r.errors] == ["truncated"] and r.outcome == "failed"
    assert r.content is not None and r.content.endswith(cut.strip())
    assert_stream_matches(text, TOOLS, seed=3)
    assert_incremental_matches(text, TOOLS, seed=3)


@pytest.mark.parametrize("text", ["<minimax:tool_call>", "Let me look.\n<minimax:tool_call>\n",
                                  '<invoke name="nope">\n<parameter name="urls">[]</parameter>\n</invoke>\n'
                                  "<minimax:tool_call>"],
                         ids=["alone", "after prose", "after an invoke naming no tool"])
def test_an_opener_after_no_call_is_a_cut_call(text: str) -> None:
    """Nothing before it is a call: the opener is all of a call that was cut off, as before."""
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"]
    assert_stream_matches(text, TOOLS, seed=3)


def test_a_call_failing_keeps_the_opener_in_its_text() -> None:
    """The opener is part of the call's block: when the call cannot be made (its schema refuses it), the block's
    text, the opener with it, stays in the content as written, and only the call's failure is reported."""
    text = SPELT.replace('["https://arxiv.org/abs/2106.09685"]', '"not a list"')
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["schema_mismatch"]
    assert r.content == text
    assert_stream_matches(text, TOOLS, seed=3)


_DSML_CALL = ('<｜DSML｜invoke name="web_extract">\n<｜DSML｜parameter name="urls" string="false">'
              '["https://arxiv.org/abs/2106.09685"]</｜DSML｜parameter>\n</｜DSML｜invoke>\n')


@pytest.mark.parametrize("opener", ["<｜DSML｜function_calls>", "<｜DSML｜tool_calls>"], ids=["v3.2", "v4"])
def test_a_dsml_opener_left_after_bare_dsml_calls_is_no_cut_call(opener: str) -> None:
    """DeepSeek-V4's section opener (`tool_calls`) left after its bare calls was still a cut call, V3.2's
    (`function_calls`) not: the bare calls' form was read as V3.2's alone."""
    text = _DSML_CALL + opener
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("web_extract", {"urls": URLS})]
    assert r.errors == [] and r.outcome == "repaired" and r.content is None
    assert_stream_matches(text, TOOLS, seed=3)
    assert_incremental_matches(text, TOOLS, seed=3)
    cut = text + '\n<｜DSML｜invoke name="web_extract">\n'
    r = repair_message(cut, TOOLS, id_factory=ids)
    assert [e.kind for e in r.errors] == ["truncated"] and r.outcome == "failed"
