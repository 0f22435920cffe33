"""Call markup quoted in inline code is an example the model wrote, not a call it made: nothing is made of it,
streamed or not, while a call on its own (or after a code span that closed) is still a call. Code spans are read
as CommonMark reads them (a span closes with a run of as many backticks as opened it); fenced blocks are not inline
code: some models put their real calls in them."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repair import StreamRepairer, repair_message
from repair.markers import LINE_START, Ticks, in_code, ticks_after
from tests.repair.helpers import ids

TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"]}}}]
CALL = '{"name": "write_file", "arguments": {"path": "a.txt", "content": "x"}}'
HERMES = f"<tool_call>{CALL}</tool_call>"

CASES = {  # text -> the calls made of it
    "hermes in inline code": (f"The model emits `{HERMES}` and waits for the result.", 0),
    "bare JSON in inline code": (f"The call looks like `{CALL}` in that format.", 0),
    "a code span of three backticks": (f"As in ```{HERMES}```, on one line.", 0),
    "inline code left open in a think block": (f"<think>a `b</think>{HERMES}", 1),  # reasoning is apart
    "inline code opened after a think block": (f"<think>a</think>`{HERMES}`", 0),
    "a call after a code span that closed": (f"Run `ls` first, then:\n{HERMES}", 1),
    "a call after a closed span on its line": (f"Use `x` then {HERMES}", 1),
    "a code span closed in a think block": (f"<think>a `b`</think>{HERMES}", 1),
    "a call on the line after an open backtick": (f"An odd ` here\n{HERMES}", 1),
    "a fenced call": (f"Writing it.\n```\n{HERMES}\n```", 1),
    # code spans as CommonMark reads them: a span opens and closes with runs of the same length
    "a span of two backticks": (f"The parser accepts ``{HERMES}`` blocks.", 0),
    "a span of two backticks holding one": (f"Both ``a ` b`` and then ``{HERMES}``.", 0),
    "a call after a two-backtick span closed": (f"Use ``a`b`` then {HERMES}", 1),
    "a call after a closing fence on its line": (f"Done:\n```sh\nls\n```{HERMES}", 1),
    "a call after an opening fence on its line": (f"```{HERMES}\n```", 1),
    "a call alone": (HERMES, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_quoted_markup_is_no_call(case: str) -> None:
    text, calls = CASES[case]
    whole = repair_message(text, TOOLS, id_factory=ids, canonical=True)
    assert len(whole.tool_calls) == calls
    if not calls:  # the example stays in the text as written, reported as nothing
        assert CALL in (whole.content or "") and not whole.errors
    for incremental in (False, True):
        for size in (1, 2, 5, 13, len(text)):
            sr = StreamRepairer(TOOLS, id_factory=ids, incremental=incremental)
            for i in range(0, len(text), size):
                sr.feed(text[i:i + size])
            sr.finish()
            assert sr.result is not None
            assert (sr.result.content, sr.result.tool_calls) == (whole.content, whole.tool_calls), (incremental, size)


def _sent(events: list) -> tuple[str, str, list[tuple[str, str]]]:
    """(content, reasoning, calls) as a client assembles the events."""
    content = "".join(e.text for e in events if type(e).__name__ == "ContentDelta")
    reasoning = "".join(e.text for e in events if type(e).__name__ == "ReasoningDelta")
    calls: dict[int, list[str]] = {}
    for e in events:
        kind = type(e).__name__
        if kind == "ToolCallStart":
            calls[e.index] = [e.name, ""]
        elif kind == "ToolArgsDelta":
            calls[e.index][1] += e.text
        elif kind == "ToolCallDelta":
            calls[e.index] = [e.name, e.arguments]
    return content, reasoning, [(n, a) for n, a in calls.values()]


TIME = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
STREAMED = {  # text, where it is cut: what the stream sends adds up to what the one-shot repair makes of it
    "a code span closed in a think block, cut inside it": ("<think>`a` " + TIME + "</think>", ["<think>`a"]),
    "two backticks opening a think block": ("<think>``" + TIME, ["<think>``"]),
    "a two-backtick span cut inside its run, then a call": ("<think>`` a `b` ``  " + TIME, ["<think>`", "` a `b` `"]),
    "a fence closed, then a call on its line": ("```sh\nls\n```" + TIME, ["```sh\nls\n``"]),
    "hermes blocks after a think block with a backtick": (  # inline code is read from the block's end, streamed too
        '<think>x `y</think><tool_call>{"name": "run_shell", "arguments": {"command": "a`b"}}</tool_call>' + TIME,
        []),
    "a backtick in a call's arguments, another call on its line": (
        '<tool_call>{"name": "run_shell", "arguments": {"command": "echo `"}}</tool_call>' + TIME, []),
}


@pytest.mark.parametrize("case", list(STREAMED))
def test_what_streams_adds_up_to_the_answer(case: str) -> None:
    from tests.repair.corpus import TOOLS as CORPUS_TOOLS

    text, cuts = STREAMED[case]
    whole = repair_message(text, CORPUS_TOOLS, id_factory=ids, canonical=True)
    pieces = [*cuts, text[sum(map(len, cuts)):]]
    sr = StreamRepairer(CORPUS_TOOLS, id_factory=ids, incremental=True)
    events = [e for p in pieces for e in sr.feed(p)] + sr.finish()
    content, reasoning, calls = _sent(events)
    assert not sr.after_header
    assert (content or None, reasoning or None) == (whole.content or None, whole.reasoning_content)
    assert calls == [(c["function"]["name"], c["function"]["arguments"]) for c in whole.tool_calls]


def test_blocks_that_sent_no_call_go_out_as_they_came_past_the_bound() -> None:
    """With tool_choice none a hermes block read while streaming sends no call; past the bound it goes out as it
    came (it was lost: only the text after it went out)."""
    from tests.repair.corpus import TOOLS as CORPUS_TOOLS

    sr = StreamRepairer(CORPUS_TOOLS, incremental=True, tool_choice="none", max_chars=len(TIME) + 2)
    events = [e for p in (TIME, "<x>", "y" * 20) for e in sr.feed(p)] + sr.finish()
    assert _sent(events) == (TIME + "<x>" + "y" * 20, "", [])


def quoted(text: str, p: int, pos: int = 0, ticks: Ticks | None = None) -> bool:
    """Whether `p` is inside inline code, reading `text` from `pos` with `ticks` what they were there (None: from
    `p`'s line start)."""
    if ticks is None:
        ticks, pos = LINE_START, text.rfind("\n", 0, p) + 1
    return in_code(ticks_after(ticks, text, pos, p))


@given(st.text(alphabet="`a \n", max_size=40), st.lists(st.integers(0, 40), max_size=5))
def test_backticks_read_in_pieces_read_as_whole(text: str, cuts: list[int]) -> None:
    """What a stream carries from piece to piece (`Ticks`) gives what reading the whole line gives, wherever the
    pieces are cut (inside a run of backticks too)."""
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    state = LINE_START
    for a, b in pairwise(bounds):
        state = ticks_after(state, text[a:b])
    assert state == ticks_after(LINE_START, text)
    for p in range(len(text) + 1):
        if p < len(text) and text[p] == "`":
            continue  # a candidate never begins with a backtick
        before = LINE_START
        for a, b in pairwise(bounds):
            if b > p:
                assert quoted(text, p, a, before) == quoted(text, p)
                break
            before = ticks_after(before, text[a:b])
