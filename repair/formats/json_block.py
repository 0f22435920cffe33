"""Calls written as plain JSON: ```json fenced blocks and bare objects (or lists of them) that name a declared
tool, e.g. {"name": "read_file", "arguments": {...}}. A bare object followed by </tool_call> is a hermes call
whose opening tag is missing; one that uses "parameters" is Llama 3's JSON form."""

from __future__ import annotations

import json
import re

from repair.formats import hermes, llama3
from repair.formats.common import DATA, DEFINITION, Ctx, fail_segment, issue, skip_ws
from repair.formats.spec import Format
from repair.markers import Kind, Lit, Name, OneOf, Ws
from repair.salvage import Failed
from repair.types import Parsed, RawCall, Segment

FAMILY = "json"
FENCE = "```"
FENCE_LANGS = ("json", "JSON", "tool_call", "tool_code", "")
START_MARKERS = ("{", "[", FENCE)
_FENCE_HEAD = re.compile(r"```(?:json|JSON|tool_call|tool_code)?[ \t]*")



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
        if got.detail == DEFINITION:  # a model showing a tool's definition in its prose: no candidate
            return None
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, "truncated", got.detail)
        return fail_segment(p, max(got.end, p + 1), FAMILY, got.kind, got.detail)
    calls, i = got
    j = skip_ws(text, i)
    closed = text.startswith(hermes.CLOSE, j)
    mangled = None if closed else hermes.MANGLED_CLOSE.match(text, j)
    hermes_close = closed or (mangled is not None and mangled.end() > j)
    if not hermes_close and any(c.data_like for c in calls):  # data naming a tool (other members, no arguments)
        got = llama3.json_calls(text, p, n, FAMILY, ctx, params_native=False, data_ends=True)
        if isinstance(got, Failed):  # it comes first: the whole value is prose (what it holds is no candidate)
            return _prose(p, got.end)
        calls, i = got  # the calls before it (it is text, read again as a candidate of its own)
    if hermes_close:
        end = j + len(hermes.CLOSE) if mangled is None else mangled.end()
        for c in calls:
            c.family = hermes.FAMILY
        calls[0].repairs.append(issue("opening_tag", "<tool_call> missing"))
        return Parsed(end, [Segment(p, end, "calls", hermes.FAMILY, calls)])
    _settle_family(calls, ctx)
    end = llama3.consume_end_token(text, i)
    return Parsed(end, [Segment(p, end, "calls", calls[0].family, calls)])


def parse_wrapped(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """llama.cpp's generic wrapper around the calls (`_WRAPPED`), read whole when it is valid JSON with that one
    member; anything else (another member, the key twice, text a decoder has to repair) is no candidate, and the
    calls inside are read as bare objects (nothing beside them is dropped)."""
    try:
        pairs = _PAIRS.raw_decode(text, p)[0]
    except (ValueError, RecursionError):
        return None
    if len(pairs) != 1 or pairs[0][0] not in ("tool_call", "tool_calls"):
        return None
    return parse_bare(text, p, ctx)


_PAIRS = json.JSONDecoder(object_pairs_hook=lambda pairs: pairs)  # (the top level's members as written, repeats kept)


_TAG = re.compile(r"<(tool-call|tool)>")


def parse_tagged(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """A bare call object (or list) inside `<tool-call>` or `<tool>` (a slip for <tool_call>): read as the bare
    form, the opening tag and what the call ends with (its closer, or the text's end) belonging to the call."""
    m = _TAG.match(text, p)
    if m is None:
        return None
    got = parse_bare(text, skip_ws(text, m.end()), ctx)
    if got is None:
        return None
    seg = got.segments[0]
    seg.start = p
    tag = m.group()
    for call in seg.calls[:1]:
        call.repairs = [r for r in call.repairs if r.kind != "opening_tag"]
        call.repairs.append(issue("opening_tag", f"{tag} written for <tool_call>"))
    return got


_FUNCTIONCALL_TAG = re.compile(r"<functioncall[ \t]+")
_TAG_END = re.compile(r"[ \t]*>")


def parse_functioncall(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """A bare call object written inside a `<functioncall ...>` tag, the tag closing after it (glaive's
    `<functioncall>` form run together with its JSON, as a local model in Home Assistant's Assist wrote it): the
    tag is the call's markup. A tag not closed right after the call is no candidate (the call inside is still read
    as the bare form)."""
    m = _FUNCTIONCALL_TAG.match(text, p)
    if m is None:
        return None
    got = parse_bare(text, m.end(), ctx)
    if got is None:
        return None
    seg = got.segments[0]
    close = _TAG_END.match(text, seg.end)
    if not seg.calls or seg.calls[0].failure is not None or close is None:
        return None
    seg.start, seg.end = p, close.end()
    seg.calls[0].repairs.append(issue("opening_tag", "the call written inside a <functioncall ...> tag"))
    return Parsed(seg.end, [seg])


def _prose(p: int, end: int) -> Parsed:
    """`text[p:end]` left as it is, and read no further for calls (a segment of no calls stays verbatim)."""
    return Parsed(end, [Segment(p, end, "calls", FAMILY, [])])


def parse_fence(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m = _FENCE_HEAD.match(text, p)
    if m is None:
        return None
    b = skip_ws(text, m.end())
    fclose = ctx.find(FENCE, b)
    limit = fclose if fclose != -1 else n
    got = llama3.json_calls(text, b, limit, FAMILY, ctx, params_native=False, data_ends=True)
    if isinstance(got, Failed):
        if got.detail == DATA:  # the fence holds data naming a tool: all of it prose
            return _prose(p, fclose + len(FENCE) if fclose != -1 else n)
        if got.detail == DEFINITION:
            return None
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, "truncated", got.detail)
        return fail_segment(p, fclose + len(FENCE) if fclose != -1 else max(got.end, b + 1), FAMILY, got.kind,
                            got.detail)
    calls, i = got
    j = skip_ws(text, i, limit)
    if j < limit:  # more than calls in the fence (data naming a tool among them): an example, no candidate
        return None
    end = fclose + len(FENCE) if fclose != -1 else n
    _settle_family(calls, ctx)
    for c in calls:
        if c.family == llama3.FAMILY:
            c.family = FAMILY
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls)])



# --- candidate kinds: an object (or a list, or a fence) whose first key names a declared tool ---------------------

_NAME = Name(64, ('"', "'"))
_KEY = OneOf(('"name"', "'name'", '"function"', "'function'", '"tool"', "'tool'", '"tool_name"', "'tool_name'"))
_Q = OneOf(('"', "'"))
_COLON = (Ws(8), Lit(":"), Ws(8))
_P1 = (Lit("{"), Ws(16), _KEY, *_COLON, _Q, _NAME)
_P2 = (Lit("{"), Ws(16), Lit('"type"'), *_COLON, Lit('"function"'), Ws(16), Lit(","), Ws(16), Lit('"function"'),
       *_COLON, Lit("{"), Ws(16), Lit('"name"'), *_COLON, Lit('"'), _NAME)
_P3 = (Lit("{"), Ws(16), OneOf(('"function"', '"tool"')), *_COLON, Lit("{"), Ws(16), Lit('"name"'), *_COLON,
       Lit('"'), _NAME)
_P4 = (Lit("{"), Ws(16), Lit('"type"'), *_COLON, Lit('"function"'), Ws(16), Lit(","), Ws(16), Lit('"name"'), *_COLON,
       Lit('"'), _NAME)
_LIST = (Lit("["), Ws(16))
# llama.cpp's generic format (a template it has no parser for): {"tool_call": {...}}, or {"tool_calls": [...]} when
# parallel calls are allowed; the wrapper is part of the call, not text left around it
_WRAPPED = (Lit("{"), Ws(16), Lit('"tool_call"'), *_COLON)
_WRAPPED_LIST = (Lit("{"), Ws(16), Lit('"tool_calls"'), *_COLON, *_LIST)
_FENCE = (Lit("```"), OneOf(FENCE_LANGS), Ws(16))
_TAGGED = (OneOf(("<tool-call>", "<tool>")), Ws(16))
_FUNCTIONCALL = (Lit("<functioncall "), Ws(16))


def _kinds() -> tuple[Kind, ...]:
    kinds = []
    for tag, pat in (("p1", _P1), ("p2", _P2), ("p3", _P3), ("p4", _P4)):
        kinds.append(Kind(f"json_{tag}", pat, parse_bare, generic=True))
        kinds.append(Kind(f"json_list_{tag}", (*_LIST, *pat), parse_bare, generic=True))
        kinds.append(Kind(f"wrapped_{tag}", (*_WRAPPED, *pat), parse_wrapped, generic=True))
        kinds.append(Kind(f"wrapped_list_{tag}", (*_WRAPPED_LIST, *pat), parse_wrapped, generic=True))
        kinds.append(Kind(f"tagged_{tag}", (*_TAGGED, *pat), parse_tagged, generic=True))
        kinds.append(Kind(f"tagged_list_{tag}", (*_TAGGED, *_LIST, *pat), parse_tagged, generic=True))
        kinds.append(Kind(f"functioncall_{tag}", (*_FUNCTIONCALL, *pat), parse_functioncall, generic=True))
        kinds.append(Kind(f"fence_{tag}", (*_FENCE, *pat), parse_fence, line_start=True, generic=True))
        kinds.append(Kind(f"fence_list_{tag}", (*_FENCE, *_LIST, *pat), parse_fence, line_start=True, generic=True))
    return tuple(kinds)


FORMAT = Format((FAMILY,), _kinds())
