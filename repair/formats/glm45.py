"""GLM-4.5 / 4.7: <tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>.

The same body appears in LongCat (<longcat_tool_call>, <longcat_arg_key>...) and Hunyuan (name<tool_sep>...).
Values are text, byte for byte, typed from the declared schema. A JSON object after the name, and the
`name k=v k2="v 2"` shorthand (for a declared tool), are accepted too.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from repair.formats.common import Ctx, add_notes, ends_with, issue, skip_ws, value_end
from repair.formats.spec import Format, Template, aliases
from repair.salvage import Failed, decode_at
from repair.types import RawCall, json_object

FAMILY = "glm45"


@dataclass(frozen=True)
class Tags:
    key: str
    key_end: str
    value: str
    value_end: str


GLM = Tags("<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")
LONGCAT = Tags("<longcat_arg_key>", "</longcat_arg_key>", "<longcat_arg_value>", "</longcat_arg_value>")
ARG_KEY = GLM.key
ENDS = ends_with(re.escape(GLM.value_end))  # what a whole body ends with (see `common.close_past_values`)
SEP = "<tool_sep>"
START_MARKERS = ("<tool_call>",)
_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]{0,127})[ \t]*")
_STRAY = re.compile(r"(?:[ \t\r\n]*</(?:arg_key|arg_value|longcat_arg_key|longcat_arg_value)>)+")


def _key_values(text: str, k: int, limit: int) -> dict[str, str] | None:
    """`a=1 b="two words"` up to `limit`, every token key=value; None otherwise."""
    rest = text[k:limit].strip()
    if not rest or "=" not in rest or len(rest) > 4096:
        return None
    try:
        tokens = shlex.split(rest)
    except ValueError:
        return None
    out: dict[str, str] = {}
    for tok in tokens:
        key, eq, value = tok.partition("=")
        if not eq or not key.isidentifier():
            return None
        out[key] = value
    return out


_KEY_BEFORE_END = {t.key_end: re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]{0,127})[ \t]*" + re.escape(t.key_end))
                   for t in (GLM, LONGCAT)}
MISPLACED_OPEN = "<tool_call>"


def key_without_opener(text: str, b: int, limit: int, ctx: Ctx, tags: Tags = GLM) -> tuple[str, int] | None:
    """A call whose first key lost its opening tag: `name key</arg_key>`, `name<tool_call>key</arg_key>` (the
    call's opener written where the key's belongs) or the key glued to the name (`send_command_to_shellcommand
    </arg_key>`, taken only when one declared tool's name is followed by one of its parameters). The declared
    tool's name and where the key starts; None otherwise."""
    m = _NAME.match(text, b, limit)
    if m is None:
        return None
    word = m.group(1)
    k = skip_ws(text, m.end(), limit)
    pat = _KEY_BEFORE_END[tags.key_end]
    if text.startswith(MISPLACED_OPEN, k):
        k = skip_ws(text, k + len(MISPLACED_OPEN), limit)
    elif k == b + len(word):  # glued: the name's word runs into the key
        if not text.startswith(tags.key_end, k) or ctx.index.resolve(word) is not None:
            return None
        found = []
        for name, tool in ctx.index.tools.items():
            props = json_object((tool.parameters or {}).get("properties"), {})
            if len(word) > len(name) and word.startswith(name) and word[len(name):] in props:
                found.append(name)
        return (found[0], b + len(found[0])) if len(found) == 1 else None
    if pat.match(text, k, limit) is None or ctx.index.resolve(word) is None:
        return None
    return word, k


def looks_like(text: str, b: int, limit: int, closed: bool, ctx: Ctx, tags: Tags = GLM) -> bool:
    """Whether a block body at `b` is this format (a name, then argument tags, JSON, key=value or nothing)."""
    m = _NAME.match(text, b, limit)
    if m is None:
        return False
    if key_without_opener(text, b, limit, ctx, tags) is not None:
        return True
    k = m.end()
    if text.startswith(SEP, k):
        return True
    stray = _STRAY.match(text, k, limit)
    if stray is not None and stray.end() > k:
        return True
    k = skip_ws(text, k, limit)
    if text.startswith(tags.key, k) or (k < limit and text[k] == "{") or (k >= limit and closed):
        return True
    return ctx.index.resolve(m.group(1)) is not None and _key_values(text, k, limit) is not None


def parse_body(text: str, b: int, limit: int, ctx: Ctx, tags: Tags = GLM,
               family: str = FAMILY) -> tuple[list[RawCall], int] | Failed:
    n = len(text)
    m = _NAME.match(text, b, limit)
    if m is None:
        return Failed("invalid_json", "no function name", b)
    call = RawCall(name=m.group(1), family=family, text_args=True)
    k = m.end()
    missing = key_without_opener(text, b, limit, ctx, tags)
    if missing is not None:
        call.name, k = missing
        call.repairs.append(issue("opening_tag", f"{tags.key} missing before the first key"))
    elif text.startswith(SEP, k):
        k += len(SEP)
    stray = _STRAY.match(text, k, limit)
    if stray is not None and stray.end() > k:
        call.repairs.append(issue("json_syntax", f"stray {stray.group().strip()!r} after the name"))
        k = stray.end()
    k = skip_ws(text, k, limit)
    if missing is None and k < limit and text[k] == "{":
        got = decode_at(text, k, limit, max_closers=0, budget=ctx.budget)
        if isinstance(got, Failed):
            return got
        call.text_args, call.arguments = False, got.value
        add_notes(call, got.repairs)
        return [call], got.end
    if missing is None and not text.startswith(tags.key, k) and k < limit:
        kv = _key_values(text, k, limit)
        if kv is not None and ctx.index.resolve(call.name) is not None:
            call.arguments = kv
            return [call], limit
    args: dict[str, str] = {}
    first = missing[1] if missing is not None else -1
    while text.startswith(tags.key, k) or k == first:
        ks = k if k == first else k + len(tags.key)
        while text.startswith(tags.key, ks):  # <arg_key><arg_key>name
            call.repairs.append(issue("json_syntax", f"repeated {tags.key}"))
            ks += len(tags.key)
        ke = ctx.find(tags.key_end, ks)
        nv = ctx.find(tags.value, ks)
        if ke == -1 or ke >= limit or (nv != -1 and nv < ke):
            if nv == -1 or nv >= limit:
                if limit >= n:
                    return Failed("truncated", "the text ends inside an argument key", n)
                return Failed("invalid_json", f"unterminated {tags.key}", limit)
            call.repairs.append(issue("closing_tag", f"{tags.key_end} missing"))
            key = text[ks:nv].strip()
            k = nv
        else:
            key = text[ks:ke].strip()
            k = ke + len(tags.key_end)
            stray = _STRAY.match(text, k, limit)
            if stray is not None and stray.end() > k and stray.group().strip():
                call.repairs.append(issue("json_syntax", f"stray {stray.group().strip()!r} after a key"))
                k = stray.end()
            k = skip_ws(text, k, limit)
        if not text.startswith(tags.value, k):
            if k >= n:
                return Failed("truncated", f"the text ends before the value of {key!r}", n)
            close = ctx.find(tags.value_end, k)
            nxt = ctx.find(tags.key, k)
            if close == -1 or close >= limit or (nxt != -1 and nxt < close):
                return Failed("invalid_json", f"no {tags.value} for {key!r}", k)
            # </arg_key>value</arg_value>: the opening tag is missing, the value is delimited all the same
            call.repairs.append(issue("opening_tag", f"{tags.value} missing before the value of {key!r}"))
            args[key] = text[k:close]
            k = skip_ws(text, close + len(tags.value_end), limit)
            continue
        vs = k + len(tags.value)
        nxt = ctx.find(tags.key, vs)
        ve = nxt if nxt != -1 and nxt < limit else limit
        close, close_end = value_end(text, tags.value_end, vs, ve, (tags.key,), limit)
        if close != -1:
            args[key] = text[vs:close]
            k = close_end
        else:
            if ve >= n:
                return Failed("truncated", f"the text ends inside the value of {key!r}", n)
            call.repairs.append(issue("closing_tag", f"{tags.value_end} missing after {key!r}"))
            args[key] = text[vs:ve].rstrip()
            k = ve
        k = skip_ws(text, k, limit)
    call.arguments = args
    return [call], k


FORMAT = Format((FAMILY,), (), aliases(FAMILY, "glm45", "glm47", "glm4_moe", "glm4", "glm"),
                (Template(FAMILY, (GLM.key,), rank=30),))
