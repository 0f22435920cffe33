"""Calls written as plain JSON: ```json fenced blocks and bare objects (or lists of them) that name a declared
tool, e.g. {"name": "read_file", "arguments": {...}}. A bare object followed by </tool_call> is a hermes call
whose opening tag is missing; one that uses "parameters" is Llama 3's JSON form."""

from __future__ import annotations

import re

from repair.formats import hermes, llama3
from repair.formats.common import Ctx, fail_segment, issue, skip_ws
from repair.salvage import Failed
from repair.types import Parsed, RawCall, Segment

FAMILY = "json"
FENCE = "```"
FENCE_LANGS = ("json", "JSON", "tool_call", "tool_code", "")
START_MARKERS = ("{", "[", FENCE)
_FENCE_HEAD = re.compile(r"```(?:json|JSON|tool_call|tool_code)?[ \t]*")


def detect(text: str) -> bool:
    return "{" in text


def _settle_family(calls: list[RawCall], ctx: Ctx) -> None:
    """Bare JSON using "parameters" is Llama 3's own form (not a repair) unless another family is configured."""
    if ctx.prefer not in (None, llama3.FAMILY):
        return
    params = [r for c in calls for r in c.repairs if r.kind == "parameters_key" and '"parameters"' in r.detail]
    if not params:
        return
    for c in calls:
        c.family = llama3.FAMILY
        c.repairs = [r for r in c.repairs if not (r.kind == "parameters_key" and '"parameters"' in r.detail)]


def parse_bare(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    got = llama3.json_calls(text, p, n, FAMILY, ctx, params_native=False)
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, "truncated", got.detail)
        return fail_segment(p, max(got.end, p + 1), FAMILY, got.kind, got.detail)
    calls, i = got
    j = skip_ws(text, i)
    if text.startswith(hermes.CLOSE, j) or ((m := hermes.MANGLED_CLOSE.match(text, j)) is not None and m.end() > j):
        end = j + len(hermes.CLOSE) if text.startswith(hermes.CLOSE, j) else m.end()
        for c in calls:
            c.family = hermes.FAMILY
        calls[0].repairs.append(issue("opening_tag", "<tool_call> missing"))
        return Parsed(end, [Segment(p, end, "calls", hermes.FAMILY, calls)])
    _settle_family(calls, ctx)
    end = llama3.consume_end_token(text, i)
    return Parsed(end, [Segment(p, end, "calls", calls[0].family, calls)])


def parse_fence(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m = _FENCE_HEAD.match(text, p)
    if m is None:
        return None
    b = skip_ws(text, m.end())
    fclose = ctx.find(FENCE, b)
    limit = fclose if fclose != -1 else n
    got = llama3.json_calls(text, b, limit, FAMILY, ctx, params_native=False)
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, "truncated", got.detail)
        return fail_segment(p, fclose + len(FENCE) if fclose != -1 else max(got.end, b + 1), FAMILY, got.kind,
                            got.detail)
    calls, i = got
    j = skip_ws(text, i, limit)
    if j < limit:
        return None
    end = fclose + len(FENCE) if fclose != -1 else n
    _settle_family(calls, ctx)
    for c in calls:
        if c.family == llama3.FAMILY:
            c.family = FAMILY
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls)])

