"""Kimi K2: <|tool_calls_section_begin|><|tool_call_begin|>functions.name:0<|tool_call_argument_begin|>{...}
<|tool_call_end|><|tool_calls_section_end|>."""

from __future__ import annotations

import re

from repair.formats.common import Ctx, add_notes, fail_segment, issue, skip_ws
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "kimi_k2"
SECTION_BEGIN = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARG_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
START_MARKERS = (SECTION_BEGIN, CALL_BEGIN)
_ID = re.compile(r"\s*(?:functions\.)?([A-Za-z0-9_.\-]+?)(?::\d+)?\s*")


def detect(text: str) -> bool:
    return SECTION_BEGIN in text or (CALL_BEGIN in text and ARG_BEGIN in text)


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    section = text.startswith(SECTION_BEGIN, p)
    i = p + len(SECTION_BEGIN) if section else p
    nxt = ctx.find(SECTION_BEGIN, i)
    bound = nxt if nxt != -1 else n
    send = ctx.find(SECTION_END, i)
    if send != -1 and send >= bound:
        send = -1
    limit = send if send != -1 else bound
    calls: list[RawCall] = []
    while ctx.room(len(calls)):
        i = skip_ws(text, i, limit)
        if not text.startswith(CALL_BEGIN, i):
            break
        hs = i + len(CALL_BEGIN)
        a = ctx.find(ARG_BEGIN, hs)
        nb = ctx.find(CALL_BEGIN, hs)
        ce = ctx.find(CALL_END, hs)
        stops = [x for x in (nb, ce) if x != -1 and x < limit]
        stop = min(stops) if stops else limit
        if a == -1 or a >= stop or a - hs > 300:
            if stop >= n:
                return fail_segment(p, n, FAMILY, "truncated", "the text ends inside a call header")
            return fail_segment(p, stop, FAMILY, "invalid_json", "call without an argument marker")
        m = _ID.fullmatch(text, hs, a)
        call = RawCall(name=m.group(1) if m else text[hs:a].strip(), family=FAMILY)
        got = decode_at(text, a + len(ARG_BEGIN), stop, max_closers=0, budget=ctx.budget)
        if isinstance(got, Failed):
            if got.kind == "truncated":
                return fail_segment(p, n, FAMILY, "truncated", got.detail, call.name)
            call.failure = issue(got.kind, got.detail)
        else:
            call.arguments = got.value
            add_notes(call, got.repairs)
            if text[got.end:stop].strip():
                call.repairs.append(issue("json_syntax", "stray text after the arguments"))
        if stop == ce and ce != -1:
            i = ce + len(CALL_END)
        else:
            if stop >= n:
                if not any(r.kind == "truncated" for r in call.repairs) and call.failure is None:
                    call.repairs.append(issue("truncated", "the text ends before <|tool_call_end|>"))
            else:
                call.repairs.append(issue("closing_tag", "<|tool_call_end|> missing"))
            i = stop
        calls.append(call)
    if not calls:
        if section and skip_ws(text, i) >= n:
            return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the tool-call section")
        return None
    first = calls[0]
    if not section:
        first.repairs.append(issue("opening_tag", "<|tool_calls_section_begin|> missing"))
    junk = ""
    if send != -1:
        junk = text[skip_ws(text, i, send):send].strip()
        end = send + len(SECTION_END)
    elif skip_ws(text, i) >= n:
        if section and not any(r.kind == "truncated" for c in calls for r in c.repairs):
            first.repairs.append(issue("truncated", "the text ends before <|tool_calls_section_end|>"))
        end = n
    else:
        if section:
            first.repairs.append(issue("closing_tag", "<|tool_calls_section_end|> missing"))
        end = i
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls, text=junk)])
