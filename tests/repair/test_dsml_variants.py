"""DSML as DeepSeek-V4-Flash writes it at times: doubled bars round the marker, a space after it, a section named
`calls`, typographic quotes round attribute values (outputs quoted in bug reports, see data/wild.jsonl)."""

from __future__ import annotations

import pytest

from repair import repair_message
from repair.formats.common import Limits
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches
from tests.repair.work import Work


def _tool(name: str, *props: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": "string"} for p in props}, "required": list(props)}}}


PAGES = [_tool("get_pages", "pages")]
READ = [_tool("read", "path")]
DD = "｜｜DSML｜｜"


def test_doubled_bars_and_typographic_quotes() -> None:
    text = (f"<{DD}tool_calls>\n<{DD}invoke name=“get_pages”>\n<{DD}parameter name=“pages” string=“true”>3-5"
            f"</{DD}parameter>\n</{DD}invoke>\n</{DD}tool_calls>")
    r = repair_message(text, PAGES, id_factory=ids)
    assert calls_of(r) == [("get_pages", {"pages": "3-5"})]
    assert r.content is None and r.errors == []
    assert_stream_matches(text, PAGES)
    assert_incremental_matches(text, PAGES)


def test_space_after_the_marker_and_a_calls_section() -> None:
    text = (f"First, let me read the skill.\n\n<{DD} calls>\n<{DD} invoke name=\"read\">\n"
            f"<{DD} parameter name=\"path\" string=\"true\">/a/SKILL.md</{DD} parameter>\n</{DD} invoke>\n"
            f"</{DD} calls>")
    r = repair_message(text, READ, id_factory=ids)
    assert calls_of(r) == [("read", {"path": "/a/SKILL.md"})]
    assert r.content == "First, let me read the skill."
    assert_stream_matches(text, READ)
    assert_incremental_matches(text, READ)


def test_ascii_doubled_bars() -> None:
    text = '<||DSML||tool_calls><||DSML||invoke name="read"><||DSML||parameter name="path">a</||DSML||parameter>' \
           "</||DSML||invoke></||DSML||tool_calls>"
    assert calls_of(repair_message(text, READ)) == [("read", {"path": "a"})]
    assert_stream_matches(text, READ)


def test_the_marker_alone_is_no_call() -> None:
    for text in (f"DeepSeek wraps calls in <{DD}tool_calls> blocks, which the client must strip.",
                 f"<{DD}tool_calls>\nI cannot call a tool for this.\n</{DD}tool_calls>",
                 f"<{DD}invoke name=“read”/> is how it looks"):
        r = repair_message(text, READ)
        assert r.tool_calls == [], text
        assert_stream_matches(text, READ)


@pytest.mark.parametrize("unit", [f"<{DD}", f"<{DD} calls><{DD} invoke name=“", f"<{DD}parameter name=“p” string=“"],
                         ids=["marker", "section_and_invoke", "parameter"])
def test_marker_runs_stay_linear(unit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """200 KB of one marker (or a section and invoke opener, or a parameter opener) again and again: candidates
    are tried at a bounded number of places and the forward searches read the text a few times in all."""
    n = 200_000
    text = (unit * (n // len(unit) + 1))[:n]
    work = Work(monkeypatch, limit=16 * n)
    r = repair_message(text, READ)
    assert r.tool_calls == []
    assert work.candidates <= 8 * Limits().handlers
    assert work.scanned <= 8 * n
