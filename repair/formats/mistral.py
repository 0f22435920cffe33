"""Mistral: [TOOL_CALLS] [{"name": ..., "arguments": {...}}] (v0.3), [TOOL_CALLS]name[ARGS]{...} (v11+,
optionally name[CALL_ID]id[ARGS]{...}) and [TOOL_CALLS]name{...} (Magistral / Devstral). There is no end marker."""

from __future__ import annotations

import re

from repair.formats.common import Ctx, add_notes, decode_calls, fail_segment, issue, skip_ws
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "mistral"
MARK = "[TOOL_CALLS]"
START_MARKERS = (MARK,)
_HEADER = re.compile(r"([A-Za-z0-9_.\-]{1,128})\s*(?:\[CALL_ID\]\s*[A-Za-z0-9_\-]{0,64}\s*)?(?:\[ARGS\]|(?=\{))")
_EOS = "</s>"



def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    i = skip_ws(text, p + len(MARK))
    nxt = ctx.find(MARK, i)
    bound = nxt if nxt != -1 else n
    if i >= n:
        return fail_segment(p, n, FAMILY, "truncated", "the text ends right after [TOOL_CALLS]")
    calls: list[RawCall] = []
    if text[i] in "[{":
        got = decode_calls(text, i, bound, FAMILY, ctx)
        if isinstance(got, Failed):
            if got.kind == "truncated":
                return fail_segment(p, n, FAMILY, "truncated", got.detail)
            return fail_segment(p, max(got.end, i + 1), FAMILY, got.kind, got.detail)
        calls, i = got
    else:
        while ctx.room(len(calls)):
            m = _HEADER.match(text, i, bound)
            if m is None:
                break
            call = RawCall(name=m.group(1), family=FAMILY)
            got2 = decode_at(text, m.end(), bound, max_closers=0, budget=ctx.budget)
            if isinstance(got2, Failed):
                if got2.kind == "truncated":
                    return fail_segment(p, n, FAMILY, "truncated", got2.detail, call.name)
                call.failure = issue(got2.kind, got2.detail)
                calls.append(call)
                i = max(got2.end, m.end())
                break
            call.arguments = got2.value
            add_notes(call, got2.repairs)
            calls.append(call)
            i = skip_ws(text, got2.end, bound)
        if not calls:
            return None
    end = i
    j = skip_ws(text, i)
    if text.startswith(_EOS, j):
        end = j + len(_EOS)
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls)])


FORMAT = Format(
    ("mistral",), (Kind("mistral", (Lit(MARK),), parse),), aliases(FAMILY, "mistral"),
    (Template(FAMILY, (MARK,), rank=80),))
