"""Call markup quoted in inline code is an example the model wrote, not a call it made: nothing is made of it,
streamed or not, while a call on its own (or after a code span that closed) is still a call. Fenced blocks are not
inline code: some models put their real calls in them."""

from __future__ import annotations

import pytest

from repair import StreamRepairer, repair_message
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
    "inline code opened in a think block": (f"<think>a `b</think>{HERMES}", 0),
    "a call after a code span that closed": (f"Run `ls` first, then:\n{HERMES}", 1),
    "a call after a closed span on its line": (f"Use `x` then {HERMES}", 1),
    "a code span closed in a think block": (f"<think>a `b`</think>{HERMES}", 1),
    "a call on the line after an open backtick": (f"An odd ` here\n{HERMES}", 1),
    "a fenced call": (f"Writing it.\n```\n{HERMES}\n```", 1),
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
