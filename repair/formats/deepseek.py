"""DeepSeek V3 and V3.1 tool calls.

V3:   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>name\\n```json\\n{...}\\n```<｜tool▁call▁end｜>
      <｜tool▁calls▁end｜>
V3.1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>name<｜tool▁sep｜>{...}<｜tool▁call▁end｜><｜tool▁calls▁end｜>
The full-width bars are also accepted as ASCII "|".
"""

from __future__ import annotations

import re

from repair.formats.common import Ctx, add_notes, fail_segment, issue, skip_ws
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY_V3 = "deepseek_v3"
FAMILY_V31 = "deepseek_v31"


def _tok(name: str) -> re.Pattern[str]:
    return re.compile("<[｜|]" + name + "[｜|]>")


CALLS_BEGIN = _tok("tool▁calls▁begin")
CALLS_END = _tok("tool▁calls▁end")
CALL_BEGIN = _tok("tool▁call▁begin")
CALL_END = _tok("tool▁call▁end")
SEP = _tok("tool▁sep")
START_MARKERS = ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<|tool▁calls▁begin|>", "<|tool▁call▁begin|>")
_V3_HEAD = re.compile(r"[ \t]*([A-Za-z0-9_.\-]{1,128})[ \t]*\r?\n?[ \t]*(?:```[A-Za-z]*[ \t]*\r?\n?)?")
_FENCE_END = re.compile(r"\s*```")


def detect(text: str) -> bool:
    return CALL_BEGIN.search(text) is not None


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m0 = CALLS_BEGIN.match(text, p)
    section = m0 is not None
    i = m0.end() if m0 else p
    nxt = ctx.find(CALLS_BEGIN, i)
    bound = nxt if nxt != -1 else n
    send, send_end = ctx.find_end(CALLS_END, i)
    if send != -1 and send >= bound:
        send = -1
    limit = send if send != -1 else bound
    calls: list[RawCall] = []
    while ctx.room(len(calls)):
        i = skip_ws(text, i, limit)
        mb = CALL_BEGIN.match(text, i, limit)
        if mb is None:
            break
        hs = mb.end()
        s, s_end = ctx.find_end(SEP, hs)
        nb = ctx.find(CALL_BEGIN, hs)
        ce, ce_end = ctx.find_end(CALL_END, hs)
        stops = [x for x in (nb, ce) if x != -1 and x < limit]
        stop = min(stops) if stops else limit
        if s == -1 or s >= stop or s - hs > 200:
            if stop >= n:
                return fail_segment(p, n, FAMILY_V31, "truncated", "the text ends inside a call header")
            return fail_segment(p, stop, FAMILY_V31, "invalid_json", "call without a separator")
        head = text[hs:s].strip()
        call = RawCall(name=head, family=FAMILY_V31)
        a = s_end
        fenced = False
        if head == "function":
            hm = _V3_HEAD.match(text, s_end, stop)
            if hm is not None and hm.end() > s_end:
                call.name, call.family, a = hm.group(1), FAMILY_V3, hm.end()
                fenced = "```" in hm.group()
        got = decode_at(text, a, stop, max_closers=0, budget=ctx.budget)
        if isinstance(got, Failed):
            if got.kind == "truncated":
                return fail_segment(p, n, call.family or FAMILY_V31, "truncated", got.detail, call.name)
            call.failure = issue(got.kind, got.detail)
            after = stop
        else:
            call.arguments = got.value
            add_notes(call, got.repairs)
            after = got.end
            if fenced:
                fm = _FENCE_END.match(text, after, stop)
                if fm is not None:
                    after = fm.end()
            if text[after:stop].strip():
                call.repairs.append(issue("json_syntax", "stray text after the arguments"))
        if stop == ce and ce != -1:
            i = ce_end
        else:
            if stop >= n:
                if call.failure is None and not any(r.kind == "truncated" for r in call.repairs):
                    call.repairs.append(issue("truncated", "the text ends before the call end marker"))
            else:
                call.repairs.append(issue("closing_tag", "call end marker missing"))
            i = stop
        calls.append(call)
    if not calls:
        if section and skip_ws(text, i) >= n:
            return fail_segment(p, n, FAMILY_V31, "truncated", "the text ends inside the tool-call section")
        return None
    first = calls[0]
    family = first.family or FAMILY_V31
    if not section:
        first.repairs.append(issue("opening_tag", "tool-calls begin marker missing"))
    junk = ""
    if send != -1:
        junk = text[skip_ws(text, i, send):send].strip()
        end = send_end
    elif skip_ws(text, i) >= n:
        if section and not any(r.kind == "truncated" for c in calls for r in c.repairs):
            first.repairs.append(issue("truncated", "the text ends before the tool-calls end marker"))
        end = n
    else:
        if section:
            first.repairs.append(issue("closing_tag", "tool-calls end marker missing"))
        end = i
    return Parsed(end, [Segment(p, end, "calls", family, calls, text=junk)])
