"""Cohere Command models. Command R7B (and Command A) write
`<|START_THINKING|>plan<|END_THINKING|><|START_ACTION|>[{"tool_call_id": "0", "tool_name": "f", "parameters":
{...}}]<|END_ACTION|>`, or `<|START_RESPONSE|>answer<|END_RESPONSE|>`: the plan is reasoning, the response content
(as llama.cpp's Command R7B parser reads them). Command R and R+ write
`Action: ```json\n[{"tool_name": "f", "parameters": {...}}]\n```` at a line start: the `Action:` line and its fence
are part of the call (read when the first call names a declared tool, and not inside a fenced block)."""

from __future__ import annotations

import re

from repair.formats.common import Ctx, decode_calls, fail_segment, issue, skip_ws, stray_prose
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit, Name, OneOf, Ws
from repair.salvage import Failed
from repair.types import Parsed, Segment

FAMILY = "command_r"
ACTION_OPEN, ACTION_CLOSE = "<|START_ACTION|>", "<|END_ACTION|>"
THINK_OPEN, THINK_CLOSE = "<|START_THINKING|>", "<|END_THINKING|>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<|START_RESPONSE|>", "<|END_RESPONSE|>"


def parse_action(text: str, p: int, ctx: Ctx) -> Parsed:
    n = len(text)
    b = p + len(ACTION_OPEN)
    close = ctx.find(ACTION_CLOSE, b)
    limit = close if close != -1 else n
    got = decode_calls(text, b, limit, FAMILY, ctx, params_native=True)
    if isinstance(got, Failed):
        if got.kind == "truncated" or close == -1:
            return fail_segment(p, n, FAMILY, got.kind, got.detail)
        return fail_segment(p, close + len(ACTION_CLOSE), FAMILY, got.kind, got.detail)
    calls, i = got
    if close == -1:
        end = skip_ws(text, i)
        if end < n:
            calls[0].repairs.append(issue("closing_tag", f"{ACTION_CLOSE} missing"))
        return Parsed(i, [Segment(p, i, "calls", FAMILY, calls)])
    prose = stray_prose(calls[-1], text[i:close])
    end = close + len(ACTION_CLOSE)
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls, text=prose)])


def _block(text: str, p: int, ctx: Ctx, opener: str, closer: str, ends: tuple[str, ...]) -> tuple[str, int]:
    """The text of a block opened at `p` and where the block ends: at its closer, else where one of `ends` opens
    (left to be read), else at the end of the text."""
    b = p + len(opener)
    close = ctx.find(closer, b)
    if close != -1:
        return text[b:close], close + len(closer)
    e = min((at for m in ends if (at := ctx.find(m, b)) != -1), default=len(text))
    return text[b:e], e


def parse_thinking(text: str, p: int, ctx: Ctx) -> Parsed:
    inner, end = _block(text, p, ctx, THINK_OPEN, THINK_CLOSE, (ACTION_OPEN, RESPONSE_OPEN))
    return Parsed(end, [Segment(p, end, "reasoning", FAMILY, text=inner)])


def parse_response(text: str, p: int, ctx: Ctx) -> Parsed:
    inner, end = _block(text, p, ctx, RESPONSE_OPEN, RESPONSE_CLOSE, (ACTION_OPEN,))
    return Parsed(end, [Segment(p, end, "content", FAMILY, text=inner)])


FENCE = "```"
_ACTION_HEAD = re.compile(r"Action:[ \t\r\n]{0,4}```(?:json|JSON)?[ \t]*")


def parse_fenced_action(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """Command R's `Action: ```json [...] ````: the calls, the line and the fence with them; a fence holding more
    than calls (or data naming a tool) is no candidate."""
    n = len(text)
    m = _ACTION_HEAD.match(text, p)
    if m is None:
        return None
    fclose = ctx.find(FENCE, m.end())
    limit = fclose if fclose != -1 else n
    got = decode_calls(text, m.end(), limit, FAMILY, ctx, params_native=True)
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, got.kind, got.detail)
        return None
    calls, i = got
    if any(c.data_like for c in calls) or skip_ws(text, i, limit) < limit:
        return None
    end = fclose + len(FENCE) if fclose != -1 else i
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls)])


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    if text.startswith(ACTION_OPEN, p):
        return parse_action(text, p, ctx)
    if text.startswith(THINK_OPEN, p):
        return parse_thinking(text, p, ctx)
    return parse_response(text, p, ctx)


FORMAT = Format(
    (FAMILY,),
    (Kind("command_r7b", (OneOf((ACTION_OPEN, THINK_OPEN, RESPONSE_OPEN)),), parse),
     Kind("command_r_action", (Lit("Action:"), Ws(4), Lit(FENCE), OneOf(("json", "JSON", "")), Ws(16), Lit("["),
                               Ws(16), Lit("{"), Ws(16), Lit('"tool_name"'), Ws(8), Lit(":"), Ws(8), Lit('"'),
                               Name(64, ('"',))),
          parse_fenced_action, line_start=True, generic=True, unfenced=True)),
    aliases(FAMILY, "command_r", "command_r7b", "command_a", "cohere"),
    (Template(FAMILY, (ACTION_OPEN, ACTION_CLOSE), rank=9),))
