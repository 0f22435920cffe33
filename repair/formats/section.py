"""A section of calls between markers: `<begin> (<call> ... <call end>)* <end>`, the shape shared by DeepSeek,
Kimi K2, Gemma 4, DeepSeek DSML, MiniMax-M2 and Hunyuan.

A format gives the markers and a parser for one call; this module walks the section, records what is missing
(section or call markers), and splits the section where a call is cut off by the end of the text: the complete
calls before it are kept, the cut-off one is reported and its text stays in the content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from repair.formats.common import Ctx, closer_after, fail_segment, has_note, issue, skip_ws, stray_prose
from repair.types import Parsed, RawCall, Segment

# One call: (text, match of the call opener, where the call's text must stop, ctx) -> (call, end of what it read).
# A call cut off by the end of the text has failure "truncated".
CallParser = Callable[[str, "re.Match[str]", int, Ctx], tuple[RawCall, int]]


@dataclass(frozen=True)
class SectionSpec:
    family: str
    begin: re.Pattern[str]
    end: re.Pattern[str]
    call: re.Pattern[str]                 # opener of one call
    call_end: re.Pattern[str] | None      # closer of one call (None: the call parser finds its own end)
    parse_call: CallParser
    begin_name: str = "section begin marker"
    end_name: str = "section end marker"
    call_end_name: str = "call end marker"
    merged_note: bool = False             # several calls in one section is itself a repair (Gemma)
    bare_call_ok: bool = True             # a call opener without the section opener is a call (else: ignored)
    bare_native: bool = False             # calls without the section are the format's own form (not a repair)
    value_end: re.Pattern[str] | None = None  # XML-style calls: what a whole call ends with before its end marker
    # (`common.ends_with`); a call end or section end marker in a value is then data (see `_past_values`)


def truncated_call(name: str | None, family: str | None, detail: str) -> RawCall:
    return RawCall(name=name, family=family, failure=issue("truncated", detail))


def _call_stop(spec: SectionSpec, ctx: Ctx, at: int, limit: int) -> tuple[int, int, int]:
    """Where a call's text must stop when its header ends at `at`: its end marker or the next call's opener,
    whichever comes first before `limit`; and the end marker's (start, end), (-1, -1) when it is not that."""
    stops = []
    ce, ce_end = ctx.find_end(spec.call_end, at) if spec.call_end is not None else (-1, -1)
    if ce != -1 and ce < limit:
        stops.append(ce)
    else:
        ce = -1
    if spec.call_end is not None:
        nb = ctx.find(spec.call, at)
        if nb != -1 and nb < limit:
            stops.append(nb)
    return (min(stops) if stops else limit), ce, ce_end


def _section_end(spec: SectionSpec, ctx: Ctx, at: int, n: int) -> tuple[int, int, int]:
    """The section's end marker after `at` as (start, end) ((-1, ...) when none comes before the next section's
    opener), and where its calls must stop: that marker, else the next opener, else the text's end `n`."""
    nxt = ctx.find(spec.begin, at)
    bound = nxt if nxt != -1 else n
    send, send_end = ctx.find_end(spec.end, at)
    if send != -1 and send >= bound:
        send = -1
    return send, send_end, send if send != -1 else bound


def _whole(text: str, call: RawCall, after: int, stop: int) -> bool:
    """Whether a call read up to `stop` came out whole: not failed, no closing tag missing, nothing left before
    `stop`."""
    return call.failure is None and not has_note(call, "closing_tag") and not text[after:stop].strip()


def _past_values(spec: SectionSpec, text: str, mb: re.Match[str], stop: int,
                 ctx: Ctx) -> tuple[RawCall, int, int, int] | None:
    """An XML-style call cut at `stop`, a call end or section end marker that its value held (a file or code that
    writes such markers): the call read again up to the first later call end marker that comes right after its
    markup's end (`spec.value_end`), before the next call or section opener; with where it ended and that marker's
    (start, end). None when there is no such marker, or the call read up to it is not whole either (the call is
    read again at most once)."""
    if spec.value_end is None or spec.call_end is None:
        return None
    bound = len(text)
    for opener in (spec.call, spec.begin):
        at = ctx.find(opener, stop + 1)
        bound = at if at != -1 and at < bound else bound
    ce, ce_end = closer_after(text, ctx, spec.call_end, spec.value_end, stop + 1, bound)
    if ce == -1:
        return None
    call, after = spec.parse_call(text, mb, ce, ctx)
    return (call, after, ce, ce_end) if _whole(text, call, after, ce) else None


def _left_over_opener(spec: SectionSpec, text: str, i: int, first: RawCall) -> int:
    """Where complete calls end, when they end at `i` (calls written without their section, the last one ended at
    its own end marker, or a section that closed): the text's end when all that follows is the section's opener
    (MiniMax-M2.5 writing `<minimax:tool_call>` after its `<invoke>` instead of before it, or once more after its
    section), markup left over rather than a call cut off (nothing of one follows it), so it goes with the calls'
    markup (noted on the `first` call); else `i`."""
    m = spec.begin.match(text, skip_ws(text, i))
    n = len(text)
    if m is None or skip_ws(text, m.end()) < n:
        return i
    first.repairs.append(issue("opening_tag", f"{spec.begin_name} left after the calls, nothing after it"))
    return n


def parse(spec: SectionSpec, text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m0 = spec.begin.match(text, p)
    section = m0 is not None
    if not section and not spec.bare_call_ok:
        return None
    i = m0.end() if m0 is not None else p
    send, send_end, limit = _section_end(spec, ctx, i, n)
    calls: list[RawCall] = []
    strays: list[str] = []  # prose written inside a call after its arguments
    closed = False  # the last call read ended at its own end marker
    while ctx.room(len(calls)):
        i = skip_ws(text, i, limit)
        mb = spec.call.match(text, i, limit)
        if mb is None:
            break
        cs, hs = i, mb.end()
        stop, ce, ce_end = _call_stop(spec, ctx, hs, limit)
        call, after = spec.parse_call(text, mb, stop, ctx)
        if after > stop and call.failure is None:  # markers inside a JSON string: the call's end lies after it
            if after > limit:
                send, send_end, limit = _section_end(spec, ctx, after, n)
            stop, ce, ce_end = _call_stop(spec, ctx, after, limit)
        elif stop in (ce, send) and not _whole(text, call, after, stop):
            longer = _past_values(spec, text, mb, stop, ctx)
            if longer is not None:
                call, after, ce, ce_end = longer
                stop = ce
                if ce > limit:
                    send, send_end, limit = _section_end(spec, ctx, ce_end, n)
        call.family = call.family or spec.family
        if call.failure is not None and call.failure.kind == "truncated":
            if not calls:
                return fail_segment(p, n, spec.family, "truncated", call.failure.detail, call.name)
            head = Segment(p, cs, "calls", calls[0].family or spec.family, calls)
            return Parsed(n, [head, Segment(cs, n, "calls", spec.family, [call])])
        if call.failure is None and spec.call_end is not None:  # (without an end the next call follows)
            prose = stray_prose(call, text[skip_ws(text, after, stop):stop])
            if prose:
                strays.append(prose)
        elif call.failure is None and text[skip_ws(text, after, stop):stop].strip():
            call.repairs.append(issue("json_syntax", "stray text after the arguments"))
        closed = spec.call_end is not None and ce != -1 and stop == ce
        if spec.call_end is None:
            i = max(after, hs)
        elif closed:
            i = ce_end
        else:
            if stop >= n:
                if call.failure is None and not has_note(call, "truncated"):
                    call.repairs.append(issue("truncated", f"the text ends before the {spec.call_end_name}"))
            else:
                call.repairs.append(issue("closing_tag", f"{spec.call_end_name} missing"))
            i = max(stop, hs)
        calls.append(call)
    if not calls:
        if section and skip_ws(text, i) >= n:
            return fail_segment(p, n, spec.family, "truncated", "the text ends inside the tool-call section")
        return None
    first = calls[0]
    family = first.family or spec.family
    if spec.merged_note and len(calls) > 1:
        first.repairs.append(issue("merged_calls", f"{len(calls)} calls in one block"))
    if not section and not spec.bare_native:
        first.repairs.append(issue("opening_tag", f"{spec.begin_name} missing"))
    junk = ""
    if send != -1:
        j = skip_ws(text, i, send)
        junk = text[j:send].strip()
        if junk and not junk.strip("}]),; \t\r\n"):
            first.repairs.append(issue("json_syntax", "stray characters before the closing tag"))
            junk = ""
        end = _left_over_opener(spec, text, send_end, first)
    elif skip_ws(text, i) >= n:
        if section and not any(has_note(c, "truncated") for c in calls):
            first.repairs.append(issue("truncated", f"the text ends before the {spec.end_name}"))
        end = n
    else:
        if section:
            first.repairs.append(issue("closing_tag", f"{spec.end_name} missing"))
        end = _left_over_opener(spec, text, i, first) if not section and closed else i
    return Parsed(end, [Segment(p, end, "calls", family, calls, text="\n\n".join([*strays, junk] if junk else strays))])
