"""Functionary v3.2: `>>>name\n{...}` for each call and `>>>all\ntext` for text (the generation prompt holds the
first `>>>`, so an answer starts with `all\n` or a name; that first marker is not in the text). A call is read
when the name is a declared tool's and a JSON object follows its line; `>>>all\n` is dropped from the content.
(v3.1's `<function=name>{...}</function>` is read as Llama 3.1's form: see `qwen3_coder`.)"""

from __future__ import annotations

import re

from repair.formats.common import Ctx, add_notes, fail_segment, issue, skip_ws
from repair.formats.spec import Format, aliases
from repair.markers import Kind, Lit, Name
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "functionary"
MARK = ">>>"
ALL = MARK + "all\n"
_HEAD = re.compile(r">>>([A-Za-z0-9_.\-]{1,64})\n")


def parse_call(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m = _HEAD.match(text, p)
    if m is None:
        return None
    k = skip_ws(text, m.end())
    if k >= n or text[k] != "{":
        return None
    nxt = ctx.find(MARK, k)
    limit = nxt if nxt != -1 else n
    got = decode_at(text, k, limit, strict_limit=n, max_closers=1 if limit < n else 0, budget=ctx.budget)
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, got.kind, got.detail, m.group(1))
        return fail_segment(p, max(got.end, k + 1), FAMILY, got.kind, got.detail, m.group(1))
    call = RawCall(name=m.group(1), family=FAMILY)
    if isinstance(got.value, dict):
        call.arguments = got.value
        add_notes(call, got.repairs)
    else:
        call.failure = issue("invalid_json", "the arguments are not an object")
    return Parsed(got.end, [Segment(p, got.end, "calls", FAMILY, [call])])


def parse_all(text: str, p: int, ctx: Ctx) -> Parsed:
    """`>>>all\n`: what follows is text for the user; the marker leaves the content."""
    end = p + len(ALL)
    return Parsed(end, [Segment(p, end, "content", FAMILY, text="")])


FORMAT = Format(
    (FAMILY,),
    (Kind("functionary_all", (Lit(ALL),), parse_all, generic=True, unfenced=True),
     Kind("functionary", (Lit(MARK), Name(64, ("\n",))), parse_call, generic=True, unfenced=True)),
    aliases(FAMILY, "functionary", "functionary_v3_2", "functionary_v3"))
