"""Harmony recipients named with spaces (LM Studio's `to=functions.Web Search`) read the same way on every path:
with the special tokens, with them stripped (`commentary to=functions.Web Search json{...}`), and with the recipient
first (`assistant to=functions.Web Search commentary json{...}`). The name is the longest declared name its words
spell; where the whole spaced name spells none but is a near miss of a declared one (`Read Files` for `Read File`:
the name-drift rules of `repair.names`), that name is the reading; where nothing is close the name is read as
before (its first word, or no call at all on the stripped paths). No call is invented. One-shot and streamed answers
agree."""

from __future__ import annotations

from typing import Any

import pytest

from repair import RepairResult, StreamRepairer
from tests.repair.helpers import calls_of, ids
from tests.repair.incremental_helpers import (
    assert_every_split_matches,
    assert_plain_splits_match,
    assert_sized_stream_matches,
)

_S = {"type": "string"}


def _tools(*names: str) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"query": _S}, "required": ["query"]}}} for name in names]


def _agrees(text: str, tools: Any) -> RepairResult:
    """The one-shot answer, which the stream gives for the text in two pieces at every offset (plain and
    incremental), in 1-character, random and sized pieces."""
    r = assert_every_split_matches(text, tools, seed=13)
    assert assert_plain_splits_match(text, tools) == r
    for sizes in ([1, 2], [3, 7], [10]):
        assert_sized_stream_matches(text, sizes, tools, strict=True)
    return r  # type: ignore[no-any-return]


ARGS = '{"query": "x"}'


def _tokens(recipient: str) -> str:
    return (f"<|start|>assistant<|channel|>commentary to=functions.{recipient} <|constrain|>json<|message|>"
            f"{ARGS}<|call|>")


def _stripped(recipient: str) -> str:
    return f"Searching.\ncommentary to=functions.{recipient} json{ARGS}"


def _stripped_tokens_left(recipient: str) -> str:
    return f"commentary to=functions.{recipient} <|constrain|>json<|message|>{ARGS}<|call|>"


def _recipient_first(recipient: str) -> str:
    return f"assistant to=functions.{recipient} commentary json\n{ARGS}"


def _recipient_first_bare(recipient: str) -> str:
    return f"Searching.\nto=functions.{recipient}<|channel|>commentary json{ARGS}"


STRIPPED_PATHS = [_stripped, _stripped_tokens_left, _recipient_first, _recipient_first_bare]
ALL_PATHS = [_tokens, *STRIPPED_PATHS]
PATH_IDS = ["stripped", "stripped, tokens left", "recipient first", "recipient first, bare"]


@pytest.mark.parametrize("form", STRIPPED_PATHS, ids=PATH_IDS)
@pytest.mark.parametrize(("declared", "recipient"), [
    (("Web Search", "Image Search"), "Web Search"),
    (("Web Search", "Web Search Images"), "Web Search Images"),
    (("Web Search", "Web Search Images"), "Web Search"),
    (("Read", "Read File"), "Read File"),
    (("Read", "Read File"), "Read"),
], ids=["only the spaced name declared", "the longer of two", "the shorter of two", "first word declared too",
        "the first word alone"])
def test_stripped_paths_read_a_spaced_recipient(form: Any, declared: tuple[str, ...], recipient: str) -> None:
    """With the special tokens stripped, the recipient was cut at its first space: no call was read (the rest of
    the name stood between it and the arguments), or none was even looked for (its first word names no tool)."""
    text = form(recipient)
    r = _agrees(text, _tools(*declared))
    assert calls_of(r) == [(recipient, {"query": "x"})]
    assert r.errors == []
    assert r.content in (None, "Searching.")


@pytest.mark.parametrize("form", ALL_PATHS, ids=["tokens", *PATH_IDS])
@pytest.mark.parametrize(("declared", "written", "called"), [
    (("Read", "Read File"), "Read Files", "Read File"),
    (("Web Search",), "Web Serch", "Web Search"),
    (("Web Search", "Web Search Images"), "Web Search Imagse", "Web Search Images"),
    (("Web Search",), "web search", "Web Search"),
], ids=["a letter added, its first word declared", "a letter dropped", "two letters swapped", "its case"])
def test_a_near_miss_of_a_spaced_name_is_that_name(form: Any, declared: tuple[str, ...], written: str,
                                                   called: str) -> None:
    """`Read Files` with `Read` and `Read File` declared called `Read`: its first word, the next one spelling no
    declared name. The whole name is a near miss of `Read File` (one letter added), the better reading."""
    text = form(written)
    r = _agrees(text, _tools(*declared))
    assert calls_of(r) == [(called, {"query": "x"})]
    assert r.errors == [] and r.outcome == "repaired"
    assert [e.kind for e in r.repairs if e.kind == "name_normalised"] == ["name_normalised"]


@pytest.mark.parametrize(("declared", "written"), [
    (("Read", "Read File"), "Read Lookup"),
    (("Read", "Read File"), "Read Folder"),
    (("Lock Door",), "Unlock Door"),
    (("Get Value",), "Set Value"),
])
def test_the_token_path_keeps_its_reading_when_nothing_is_close(declared: tuple[str, ...], written: str) -> None:
    """Words that are no near miss of any declared name leave today's reading: the first word when it is a tool,
    else an unknown name (never another tool whose words differ in meaning)."""
    text = _tokens(written)
    r = _agrees(text, _tools(*declared))
    first = written.split()[0]
    if first in declared:
        assert calls_of(r) == [(first, {"query": "x"})] and r.errors == []
    else:
        assert r.tool_calls == [] and [e.kind for e in r.errors] == ["unknown_name"] and r.content == text


@pytest.mark.parametrize("form", STRIPPED_PATHS, ids=PATH_IDS)
@pytest.mark.parametrize(("declared", "written"), [
    (("Read", "Read File"), "Read Lookup"),
    (("Web Search",), "Web Lookup"),
    (("Lock Door",), "Unlock Door"),
    (("Get Value",), "Set Value"),
])
def test_stripped_paths_read_no_call_when_nothing_is_close(form: Any, declared: tuple[str, ...],
                                                           written: str) -> None:
    """Without the tokens, words between the name and the arguments that spell no declared name made the text no
    call, and still do: no call, no error, the text as written."""
    text = form(written)
    r = _agrees(text, _tools(*declared))
    assert r.tool_calls == [] and r.errors == [] and r.content == text


@pytest.mark.parametrize("text", [
    "The header reads commentary to=functions.Web Search then the arguments.",
    "Write commentary to=functions.Web Search json and then the JSON object.",
    "assistant to=functions.Web Search is how the header starts.",
    "to=functions.Web Search commentary\n\nis the header.",
    "Use `commentary to=functions.Web Search json{\"query\": \"x\"}` to search.",
])
def test_a_spaced_recipient_in_prose_stays_text(text: str) -> None:
    r = _agrees(text, _tools("Web Search"))
    assert r.tool_calls == [] and r.errors == [] and r.content == text


# The recipient-first reading (`assistant to=functions.NAME commentary json{...}`) needs its header's `commentary`:
# without it, a sentence or a doc line naming `to=functions.NAME` before an object is text (the spaced-name reading
# had let the header go missing, and each such line became a call)
NO_HEADER = [
    'The assistant to=functions.search {"query": "x"} line is an example.',
    'assistant to=functions.search {"query": "x"}',
    'assistantto=functions.search {"query": "x"}',
    'to=functions.search {"query": "x"}',
    'Examples:\nto=functions.search {"query": "a"}\nto=functions.search {"query": "b"}\n',
    'assistant to=functions.Web Search {"query": "x"}',
]


@pytest.mark.parametrize("text", NO_HEADER)
def test_a_recipient_first_without_its_channel_word_is_text(text: str) -> None:
    tools = _tools("search", "Web Search")
    r = _agrees(text, tools)
    assert calls_of(r) == [] and r.content == text


@pytest.mark.parametrize("text", ['assistant to=functions.search commentary json{"query": "x"}',
                                  'to=functions.search commentary json {"query": "x"}',
                                  'assistant to=functions.Web Search commentary json{"query": "x"}'])
def test_a_recipient_first_with_its_channel_word_is_still_the_call(text: str) -> None:
    r = _agrees(text, _tools("search", "Web Search"))
    assert len(calls_of(r)) == 1 and r.content is None


@pytest.mark.parametrize("text", [
    "Use this form:\nto=functions.search is how it is named.\nThen more prose follows here.\nAnd more.\n",
    "The assistant to=functions.search form is old.\nThen more prose follows here.\nAnd more.\n",
    "Use this form:\nto=functions.Web Search is how it is named.\nThen more prose follows here.\nAnd more.\n"])
def test_prose_naming_a_recipient_first_goes_out_at_its_lines_end(text: str) -> None:
    """Where a recipient-first line has no `commentary`, the line is text once it ends: the stream sends it then
    instead of holding the rest of the answer to its end."""
    tools = _tools("search", "Web Search")
    sr = StreamRepairer(tools, id_factory=ids)
    line_end = text.index("\n", text.index("to=functions.")) + 1
    sent = "".join(getattr(d, "text", "") or "" for d in sr.feed(text[:line_end + 1]))
    assert sent.startswith(text[:line_end - 1]), sent
    sr.feed(text[line_end + 1:])
    sr.finish()
    assert sr.result == _agrees(text, tools) and sr.result.content == text
