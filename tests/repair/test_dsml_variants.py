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


EXEC = [_tool("exec_command", "cmd")]


def _nested(inner: str) -> str:
    return (f"<{DD}tool_calls>\n<{DD}invoke name=\"exec_command\">\n{inner}\n</{DD}invoke>\n</{DD}tool_calls>")


def test_a_parameter_written_as_a_self_closing_invoke() -> None:
    """DeepSeek-V4-Flash (codex-relay#49) wrote a parameter as a self-closing invoke inside the call's own, its value
    in the `string` attribute: one of the call's declared parameters, so its value (`opening_tag`)."""
    text = _nested(f"<{DD}invoke name=\"cmd\" string=\"echo alpha\" />")
    r = repair_message(text, EXEC, id_factory=ids)
    assert calls_of(r) == [("exec_command", {"cmd": "echo alpha"})]
    assert r.content is None and r.errors == []
    assert [x.kind for x in r.repairs] == ["opening_tag"]
    assert_stream_matches(text, EXEC)
    assert_incremental_matches(text, EXEC)


@pytest.mark.parametrize(("inner", "tools"), [
    (f"<{DD}invoke name=\"command\" string=\"echo alpha\" />", EXEC),  # not one of the tool's parameters
    (f"<{DD}invoke name=\"cmd\" string=\"true\" />", EXEC),            # a type marker, no value
    (f"<{DD}invoke name=\"cmd\" />", EXEC),                              # no value at all
    (f"<{DD}invoke name=\"cmd\" string=\"echo alpha\" />", [*EXEC, _tool("cmd", "x")]),  # a declared tool's name
])
def test_a_self_closing_invoke_that_is_no_parameter_of_the_call_makes_no_call(
        inner: str, tools: list[dict]) -> None:
    text = _nested(inner)
    r = repair_message(text, tools, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert_stream_matches(text, tools)
