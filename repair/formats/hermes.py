"""Hermes / Qwen2.5: <tool_call>{"name": ..., "arguments": {...}}</tool_call>.

`<tool_call>` also opens Qwen3-Coder XML bodies (<function=...>), GLM bodies (name + <arg_key>) and MiniCPM5's
(<function name="f">); the block is found here and its body handed to the right parser.
"""

from __future__ import annotations

import re

from repair.formats import glm45, invoke, qwen3_coder, section
from repair.formats.common import (
    Block,
    Ctx,
    add_notes,
    close_past_values,
    decode_calls,
    fail_segment,
    finish_block,
    issue,
    left_over_opener,
    open_block,
    skip_ws,
)
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "hermes"
OPEN = "<tool_call>"
CLOSE = "</tool_call>"
START_MARKERS = (OPEN,)
MANGLED_CLOSE = re.compile(
    r"<\s*/\s*\|?\s*(?:tool[_\- ]?calls?|function[_\- ]?calls?|toolcall|tool)\s*\|?\s*>?"
    r"|<\|/tool_call\|>|</tool_call(?![>\w])",
    re.IGNORECASE,
)
_GLM_HEAD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}[ \t]*")
_FUNCTION_ELEMENT = re.compile(r"<function>[ \t]*([A-Za-z_][A-Za-z0-9_.\-]{0,127})[ \t]*</function>")


def _body_starts_call(text: str, b: int, limit: int) -> bool:
    """Whether a block's body at `b` starts a call: a JSON body, Qwen3-Coder's <function=, a GLM name with its
    arguments, or `<function>name</function>` then a JSON object (as `element_body` reads it)."""
    if b >= limit:
        return False
    if text[b] in "{[" or text.startswith(qwen3_coder.FUNC, b):
        return True
    if (head := _FUNCTION_ELEMENT.match(text, b, limit)) is not None:
        k = skip_ws(text, head.end(), limit)
        return k < limit and text[k] == "{"
    m = _GLM_HEAD.match(text, b, limit)
    if m is None:
        return False
    k = skip_ws(text, m.end(), limit)
    return text.startswith(glm45.ARG_KEY, k) or (k < limit and text[k] == "{" and k > m.end())


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    block = open_block(text, p, p + len(OPEN), ctx, OPEN, CLOSE, FAMILY)
    if not isinstance(block, Block):
        return block
    b, limit, bound, close = block.start, block.limit, block.bound, block.close
    tagged = text[b] == "<"  # (the tags below: a JSON body, the usual one, is none of them)
    if tagged and invoke.FUNCTION.match(text, b, limit):  # MiniCPM5's <function name="f"> blocks in the block
        return section.parse(invoke.MINICPM5, text, p, ctx)
    if close == -1 and text.startswith(OPEN, limit):  # GLM: name<tool_call>key</arg_key>: the opener for <arg_key>
        after = limit + len(OPEN)
        nxt = ctx.find(OPEN, after)
        bound2 = nxt if nxt != -1 else n
        close2 = ctx.find(CLOSE, after)
        close2 = close2 if close2 < bound2 else -1
        limit2 = close2 if close2 != -1 else bound2
        if glm45.key_without_opener(text, b, limit2, ctx) is not None:
            limit, bound, close = limit2, bound2, close2
    if tagged and qwen3_coder.starts_call(text, b, limit, ctx):
        got, close = close_past_values(text, ctx, lambda lim: qwen3_coder.parse_functions(text, b, lim, ctx),
                                       qwen3_coder.parse_functions(text, b, limit, ctx), close, CLOSE,
                                       qwen3_coder.ENDS, bound, qwen3_coder.LOST)
        family = qwen3_coder.FAMILY
    elif text[b] in "{[":
        got = json_body(text, b, limit, bound, ctx)
        family = FAMILY
    elif tagged and (head := _FUNCTION_ELEMENT.match(text, b, limit)) is not None:
        element = element_body(text, head, limit, close != -1, ctx)
        if element is None:
            return None
        got, family = element, FAMILY
    else:
        if not glm45.looks_like(text, b, limit, close != -1, ctx):
            return None
        got, close = close_past_values(text, ctx, lambda lim: glm45.parse_body(text, b, lim, ctx),
                                       glm45.parse_body(text, b, limit, ctx), close, CLOSE, glm45.ENDS, bound)
        family = glm45.FAMILY
    limit = close if close != -1 else bound
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, family, "truncated", got.detail)
        end = close + len(CLOSE) if close != -1 else max(got.end, b + 1)
        return fail_segment(p, min(end, n), family, got.kind, got.detail)
    calls, i = got
    first = calls[0]
    if family == glm45.FAMILY and first.text_args and close == -1 and skip_ws(text, i) >= n:
        return fail_segment(p, n, family, "truncated", "the text ends before </tool_call>; more arguments may follow",
                            first.name)
    if i > limit:  # markers inside JSON strings: find the block's end again after the JSON
        next_open = ctx.find(OPEN, i)
        bound = next_open if next_open != -1 else n
        close = ctx.find(CLOSE, i)
        if close != -1 and close >= bound:
            close = -1
        limit = close if close != -1 else bound
    j = skip_ws(text, i, limit)
    if close == -1 and text.startswith(OPEN, j) and not _body_starts_call(text, skip_ws(text, j + len(OPEN)), n):
        first.repairs.append(issue("closing_tag", "opening tag used as the closing tag"))
        end, junk = j + len(OPEN), ""
    else:
        end, junk = finish_block(text, i, close, len(CLOSE), first, mangled=MANGLED_CLOSE)
        if close != -1:  # a closed block, whatever its body: a lone <tool_call> after it is left over
            end = left_over_opener(text, end, OPEN, calls)
    return Parsed(end, [Segment(p, end, "calls", family, calls, text=junk)])


def element_body(text: str, head: re.Match[str], limit: int, closed: bool,
                 ctx: Ctx) -> tuple[list[RawCall], int] | Failed | None:
    """`<function>terminal</function>` and then the arguments as a bare JSON object (Gemma 3, Qwen3.6): the tool
    named in an element, its arguments after it. None when no object follows the element (nothing is read)."""
    k = skip_ws(text, head.end(), limit)
    if k >= limit or text[k] != "{":
        return None
    got = decode_at(text, k, limit, max_closers=1 if closed else 0, budget=ctx.budget)
    if isinstance(got, Failed):
        return got
    call = RawCall(name=head.group(1), arguments=got.value, family=FAMILY)
    add_notes(call, got.repairs)
    return [call], got.end


def json_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    calls: list[RawCall] = []
    i = b
    while True:
        got = decode_calls(text, i, limit, FAMILY, ctx, strict_limit=bound, reach=not calls)
        if isinstance(got, Failed):
            if not calls:
                return got
            break
        calls.extend(got[0])
        i = got[1]
        j = skip_ws(text, i, limit)
        if j < limit and text[j] in ",;":
            j = skip_ws(text, j + 1, limit)
        if j < limit and text[j] == "{" and ctx.room(len(calls)):
            i = j
            continue
        break
    if len(calls) > 1:
        calls[0].repairs.append(issue("merged_calls", f"{len(calls)} calls in one block"))
    return calls, i


FORMAT = Format(
    ("hermes",), (Kind("hermes", (Lit(OPEN),), parse),),
    aliases(FAMILY, "hermes", "json_tools", "qwen", "qwen2_5", "qwen25", "qwen3", "ernie45", "ernie4_5"),
    (Template(FAMILY, (OPEN,), rank=90),))
