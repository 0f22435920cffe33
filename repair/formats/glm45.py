"""GLM-4.5 / 4.7: <tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>.

Values are text, typed from the declared schema. A JSON object after the name is accepted too.
"""

from __future__ import annotations

import re

from repair.formats.common import Ctx, add_notes, issue, skip_ws
from repair.salvage import Failed, decode_at
from repair.types import RawCall

FAMILY = "glm45"
ARG_KEY = "<arg_key>"
ARG_KEY_END = "</arg_key>"
ARG_VALUE = "<arg_value>"
ARG_VALUE_END = "</arg_value>"
START_MARKERS = ("<tool_call>",)
_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]{0,127})[ \t]*")


def detect(text: str) -> bool:
    return "<tool_call>" in text and ARG_KEY in text


def parse_body(text: str, b: int, limit: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    n = len(text)
    m = _NAME.match(text, b, limit)
    if m is None:
        return Failed("invalid_json", "no function name", b)
    call = RawCall(name=m.group(1), family=FAMILY, text_args=True)
    k = skip_ws(text, m.end(), limit)
    if k < limit and text[k] == "{":
        got = decode_at(text, k, limit, max_closers=0, budget=ctx.budget)
        if isinstance(got, Failed):
            return got
        call.text_args, call.arguments = False, got.value
        add_notes(call, got.repairs)
        return [call], got.end
    args: dict[str, str] = {}
    while text.startswith(ARG_KEY, k):
        ks = k + len(ARG_KEY)
        ke = ctx.find(ARG_KEY_END, ks)
        nv = ctx.find(ARG_VALUE, ks)
        if ke == -1 or ke >= limit or (nv != -1 and nv < ke):
            if nv == -1 or nv >= limit:
                if limit >= n:
                    return Failed("truncated", "the text ends inside an argument key", n)
                return Failed("invalid_json", "unterminated <arg_key>", limit)
            call.repairs.append(issue("closing_tag", "</arg_key> missing"))
            key = text[ks:nv].strip()
            k = nv
        else:
            key = text[ks:ke].strip()
            k = skip_ws(text, ke + len(ARG_KEY_END), limit)
        if not text.startswith(ARG_VALUE, k):
            if k >= n:
                return Failed("truncated", f"the text ends before the value of {key!r}", n)
            return Failed("invalid_json", f"no <arg_value> for {key!r}", k)
        vs = k + len(ARG_VALUE)
        ends = [e for e in (ctx.find(ARG_VALUE_END, vs), ctx.find(ARG_KEY, vs)) if e != -1 and e < limit]
        ve = min(ends) if ends else limit
        if ends and ve == ctx.find(ARG_VALUE_END, vs):
            k = ve + len(ARG_VALUE_END)
        else:
            if ve >= n:
                return Failed("truncated", f"the text ends inside the value of {key!r}", n)
            call.repairs.append(issue("closing_tag", f"</arg_value> missing after {key!r}"))
            k = ve
        args[key] = text[vs:ve].strip()
        k = skip_ws(text, k, limit)
    call.arguments = args
    return [call], k
