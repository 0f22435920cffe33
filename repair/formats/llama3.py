"""Llama 3.x: <|python_tag|>{"name": ..., "parameters": {...}} (several separated by ";"), the bare JSON form
(read by the json module, as family llama3 when it uses "parameters"), and <|python_tag|>tool.call(q="...")."""

from __future__ import annotations

import re

from repair.formats import pythonic
from repair.formats.common import DATA, Ctx, decode_calls, fail_segment, skip_ws
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit
from repair.salvage import Failed
from repair.types import Parsed, RawCall, Segment

FAMILY = "llama3"
TAG = "<|python_tag|>"
START_MARKERS = (TAG,)
END_TOKENS = ("<|eom_id|>", "<|eot_id|>")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\s*\(")



def consume_end_token(text: str, i: int) -> int:
    j = skip_ws(text, i)
    for tok in END_TOKENS:
        if text.startswith(tok, j):
            return j + len(tok)
    return i


def json_calls(text: str, i: int, limit: int, family: str, ctx: Ctx, *, params_native: bool = True,
               data_ends: bool = False) -> tuple[list[RawCall], int] | Failed:
    """JSON call objects separated by ";" (or whitespace). `data_ends` (text without a format's markup): a value
    holding data that names a tool (`RawCall.data_like`) is no call and ends the run, as a value that is no call
    shape does (first: no candidate at all)."""
    calls: list[RawCall] = []
    while True:
        got = decode_calls(text, i, limit, family, ctx, params_native=params_native)
        if not isinstance(got, Failed) and data_ends and any(c.data_like for c in got[0]):
            got = Failed("invalid_json", DATA, got[1])
        if isinstance(got, Failed):
            if not calls:
                return got
            break
        calls.extend(got[0])
        i = got[1]
        j = skip_ws(text, i, limit)
        if j < limit and text[j] == ";":
            j = skip_ws(text, j + 1, limit)
        if j < limit and text[j] == "{" and ctx.room(len(calls)):
            i = j
            continue
        break
    return calls, i


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    i = skip_ws(text, p + len(TAG))
    nxt = ctx.find(TAG, i)
    bound = nxt if nxt != -1 else n
    if i >= n:
        return fail_segment(p, n, FAMILY, "truncated", "the text ends right after <|python_tag|>")
    if text[i] == "{":
        got = json_calls(text, i, bound, FAMILY, ctx)
        if isinstance(got, Failed):
            if got.kind == "truncated":
                return fail_segment(p, n, FAMILY, "truncated", got.detail)
            return fail_segment(p, max(got.end, i + 1), FAMILY, got.kind, got.detail)
        calls, i = got
    elif _IDENT.match(text, i, bound):
        paren = text.find("(", i, bound)
        e = pythonic.extent(text, paren, bound)
        if e is None or e == -1:
            kind = "truncated" if e is None and bound >= n else "invalid_json"
            return fail_segment(p, n if kind == "truncated" else bound, FAMILY, kind, "call does not close")
        parsed = pythonic.parse_calls(text[i:e], FAMILY)
        if isinstance(parsed, Failed):
            return fail_segment(p, e, FAMILY, parsed.kind, parsed.detail)
        calls, i = parsed, e
    else:
        return None
    end = consume_end_token(text, i)
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls)])


FORMAT = Format(
    ("llama3",), (Kind("llama3_tag", (Lit(TAG),), parse),),
    aliases(FAMILY, "llama3", "llama3_json", "llama", "llama32", "llama4_json"),
    (Template(FAMILY, (TAG,), rank=95), Template(FAMILY, ("<|start_header_id|>", '"parameters"'), rank=96)))
