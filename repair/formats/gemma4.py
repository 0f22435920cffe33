"""Gemma 4: <|tool_call>call:name{key:<|"|>value<|"|>,n:5}<tool_call|>; FunctionGemma uses
<start_function_call>call:name{key:<escape>value<escape>}<end_function_call>."""

from __future__ import annotations

import json
import re

from repair.formats.common import Ctx, add_notes, fail_segment, finish_block, issue, skip_ws
from repair.salvage import Failed, loads
from repair.types import Parsed, RawCall, Segment

FAMILY = "gemma4"
OPEN, CLOSE, QUOTE = "<|tool_call>", "<tool_call|>", '<|"|>'
FG_OPEN, FG_CLOSE, FG_QUOTE = "<start_function_call>", "<end_function_call>", "<escape>"
START_MARKERS = (OPEN, FG_OPEN)
_CALL = re.compile(r"call:([A-Za-z0-9_.\-]{1,128})\s*")
_BARE_KEY = re.compile(r"(?<=[{,])(\s*)([A-Za-z_][A-Za-z0-9_\-]*)(\s*):")
_INTERESTING = {q: re.compile("[{}]|" + re.escape(q)) for q in (QUOTE, FG_QUOTE)}


def detect(text: str) -> bool:
    return (OPEN in text and CLOSE in text) or FG_OPEN in text


def _keys(chunk: str, after_brace: bool) -> str:
    """Quote bare keys in a chunk of non-string text (a key follows "{" or ",")."""
    return _BARE_KEY.sub(r'\1"\2"\3:', ("{" + chunk) if after_brace else chunk)[1 if after_brace else 0:]


def _object(text: str, i: int, limit: int, quote: str) -> tuple[str, int] | None:
    """The object at text[i] == "{" converted to JSON text, and where it ended; None when it does not close."""
    out: list[str] = []
    depth = 0
    pos = i
    prev = ""
    pat = _INTERESTING[quote]
    while True:
        m = pat.search(text, pos, limit)
        if m is None:
            return None
        if pos < m.start():
            out.append(_keys(text[pos:m.start()], prev == "{"))
        tok = m.group()
        if tok == quote:
            close = text.find(quote, m.end(), limit)
            if close == -1:
                return None
            out.append(json.dumps(text[m.end():close], ensure_ascii=False))
            pos = close + len(quote)
            prev = '"'
            continue
        out.append(tok)
        pos = m.end()
        prev = tok
        depth += 1 if tok == "{" else -1
        if depth > 128:
            return None
        if depth == 0:
            return "".join(out), pos


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    fg = text.startswith(FG_OPEN, p)
    opener, closer, quote = (FG_OPEN, FG_CLOSE, FG_QUOTE) if fg else (OPEN, CLOSE, QUOTE)
    i = p + len(opener)
    nxt = ctx.find(opener, i)
    bound = nxt if nxt != -1 else n
    close = ctx.find(closer, i)
    if close != -1 and close >= bound:
        close = -1
    limit = close if close != -1 else bound
    calls: list[RawCall] = []
    while ctx.room(len(calls)):
        i = skip_ws(text, i, limit)
        m = _CALL.match(text, i, limit)
        if m is None:
            break
        call = RawCall(name=m.group(1), family=FAMILY)
        k = m.end()
        if k >= limit or text[k] != "{":
            if k >= n:
                return fail_segment(p, n, FAMILY, "truncated", "the text ends before the arguments", call.name)
            call.arguments = {}
            calls.append(call)
            i = k
            continue
        obj = _object(text, k, limit, quote)
        if obj is None:
            if limit >= n:
                return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the arguments", call.name)
            call.failure = issue("invalid_json", "arguments object does not close")
            calls.append(call)
            i = limit
            break
        got = loads(obj[0], budget=ctx.budget)
        if isinstance(got, Failed):
            call.failure = issue(got.kind, got.detail)
        else:
            call.arguments = got.value
            add_notes(call, got.repairs)
        calls.append(call)
        i = obj[1]
    if not calls:
        if skip_ws(text, i) >= n:
            return fail_segment(p, n, FAMILY, "truncated", "the text ends right after the opening tag")
        return None
    if len(calls) > 1:
        calls[0].repairs.append(issue("merged_calls", f"{len(calls)} calls in one block"))
    end, junk = finish_block(text, i, close, len(closer), calls[0])
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls, text=junk)])
