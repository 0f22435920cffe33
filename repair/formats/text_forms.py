"""Degraded prose forms of a call: "[Tool call: name({...})]" and "Tool call: name({...})" (also name(a=1)), and
the same worded "[Calling tool: name({...})]" (how some servers write earlier calls into the prompt, which models
then copy)."""

from __future__ import annotations

import re

from repair.formats import pythonic
from repair.formats.common import Ctx, add_notes, fail_segment, issue, skip_ws
from repair.formats.spec import Format
from repair.markers import Kind, Name, OneOf, Ws
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "text"
PREFIXES = ("[Tool call:", "Tool call:", "tool call:", "Tool Call:", "[Tool Call:", "TOOL CALL:", "[TOOL CALL:",
            "[tool call:", "[Calling tool:", "Calling tool:")
START_MARKERS = PREFIXES
_HEAD = re.compile(
    r"(\[)?(?:Tool call|tool call|Tool Call|TOOL CALL|Calling tool):[ \t\r\n]{0,4}([A-Za-z0-9_.\-]{1,64})\(")



def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m = _HEAD.match(text, p)
    if m is None:
        return None
    name = m.group(2)
    paren = m.end() - 1
    e = pythonic.extent(text, paren, n)
    if e is None:
        return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the call", name)
    if e == -1:
        return fail_segment(p, n, FAMILY, "invalid_json", "the call does not close", name)
    call = RawCall(name=name, family=FAMILY)
    inner = text[paren + 1:e - 1]
    s = inner.strip()
    if not s:
        call.arguments = {}
    elif s[0] in "{[":
        k = skip_ws(text, paren + 1)
        got = decode_at(text, k, e - 1, max_closers=0, budget=ctx.budget)
        if isinstance(got, Failed):
            call.failure = issue(got.kind, got.detail)
        elif text[got.end:e - 1].strip():
            call.failure = issue("invalid_json", "text after the arguments")
        else:
            call.arguments = got.value
            add_notes(call, got.repairs)
    else:
        parsed = pythonic.parse_calls("f(" + inner + ")", FAMILY)
        if isinstance(parsed, Failed):
            call.failure = issue(parsed.kind, parsed.detail)
        else:
            call.arguments, call.failure = parsed[0].arguments, parsed[0].failure
    end = e
    if m.group(1):
        j = skip_ws(text, e)
        if text.startswith("]", j):
            end = j + 1
    return Parsed(end, [Segment(p, end, "calls", FAMILY, [call])])


FORMAT = Format(
    (FAMILY,), (Kind("text", (OneOf(PREFIXES), Ws(4), Name(64, ("(",))), parse, line_start=True, generic=True),))
