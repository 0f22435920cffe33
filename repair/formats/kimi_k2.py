"""Kimi K2: <|tool_calls_section_begin|><|tool_call_begin|>functions.name:0<|tool_call_argument_begin|>{...}
<|tool_call_end|><|tool_calls_section_end|>."""

from __future__ import annotations

import re

from repair.formats import section
from repair.formats.common import Ctx, add_notes, issue, json_string, skip_ws
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, OneOf
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "kimi_k2"
SECTION_BEGIN = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARG_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
START_MARKERS = (SECTION_BEGIN, "<|tool_call_section_begin|>", CALL_BEGIN)
_ID = re.compile(r"\s*(?:functions\.)?([A-Za-z0-9_.\-]+?)(?::\d+)?\s*")
# an id a client cleaned in the history and the model copied: `functions.exec:5` as `functionsexec5`, `functions_exec_5`
_CLEANED_ID = re.compile(r"\s*functions[._]?([A-Za-z0-9_.\-]+?)([:_]?\d+)?\s*")
_ARG = re.compile(re.escape(ARG_BEGIN))
_END_AFTER = re.compile(r"\s*(?:" + re.escape(CALL_END) + r"|<\|tool_calls?_section_end\|>)")  # see _call


def _cleaned_name(written: str, ctx: Ctx) -> str | None:
    """The one declared tool a cleaned id (see `_CLEANED_ID`) names: the rest after `functions`, with or without a
    trailing call number; None when neither resolves, or each resolves to another tool."""
    m = _CLEANED_ID.fullmatch(written)
    if m is None:
        return None
    bare, number = m.group(1), m.group(2) or ""
    found = {ctx.index.resolve(bare + number), ctx.index.resolve(bare)} - {None}
    return found.pop() if len(found) == 1 else None


def _named_call(text: str, hs: int, a: int, ctx: Ctx) -> RawCall:
    """A call named by its id, `functions.name:0` (the name as written); a cleaned id naming one declared tool gives
    that tool, reported `name_normalised`."""
    m = _ID.fullmatch(text, hs, a)
    name = m.group(1) if m else text[hs:a].strip()
    call = RawCall(name=name, family=FAMILY)
    if ctx.index.resolve(name) is None:
        cleaned = _cleaned_name(text[hs:a], ctx)
        if cleaned is not None:
            call.name = cleaned
            call.repairs.append(issue("name_normalised", f"{name!r} -> {cleaned!r}"))
    return call


def _call(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
    n = len(text)
    hs = mb.end()
    a = ctx.find(_ARG, hs)
    if a == -1 or a >= stop or a - hs > 300:
        if stop >= n:
            return section.truncated_call(None, FAMILY, "the text ends inside a call header"), n
        return RawCall(name=None, family=FAMILY, failure=issue("invalid_json", "call without an argument marker")), stop
    call = _named_call(text, hs, a, ctx)
    got = decode_at(text, a + len(ARG_BEGIN), stop, max_closers=0 if stop >= n else 1, budget=ctx.budget,
                    reach=True)
    if not isinstance(got, Failed) and got.end > stop and not _END_AFTER.match(text, got.end):
        got = Failed("invalid_json", "the arguments do not end before the next marker", stop)
    if isinstance(got, Failed):
        encoded = json_string(text, skip_ws(text, a + len(ARG_BEGIN), stop), stop)
        if encoded is not None:  # the arguments object written as a JSON string
            call.arguments = encoded[0]
            return call, encoded[1]
        call.failure = issue(got.kind, got.detail)
        return call, n if got.kind == "truncated" else stop
    call.arguments = got.value
    add_notes(call, got.repairs)
    return call, got.end


SPEC = section.SectionSpec(
    FAMILY, re.compile(r"<\|tool_calls?_section_begin\|>"), re.compile(r"<\|tool_calls?_section_end\|>"),
    re.compile(re.escape(CALL_BEGIN)),
    re.compile(re.escape(CALL_END)), _call, begin_name=SECTION_BEGIN, end_name=SECTION_END, call_end_name=CALL_END)


_ENDS = (SECTION_END, "<|tool_call_section_end|>")
_END_MISSING = f"{SECTION_END} missing"


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """The section; its end marker cut short by the end of the text (`<|tool_calls_section_end|`, as OpenRouter
    passed Kimi-K2's on) is the section's, reported, not content."""
    got = section.parse(SPEC, text, p, ctx)
    if got is None or len(got.segments) != 1 or got.segments[0].kind != "calls":
        return got
    rest = text[skip_ws(text, got.end):]
    seg = got.segments[0]
    first = seg.calls[0] if seg.calls else None
    if len(rest) < 3 or not any(e.startswith(rest) for e in _ENDS) or first is None or seg.text:
        return got
    notes = [i for i, r in enumerate(first.repairs) if (r.kind, r.detail) == ("closing_tag", _END_MISSING)]
    if not notes:
        return got
    first.repairs[notes[0]] = issue("closing_tag", f"{SECTION_END} cut short at the end of the text")
    return Parsed(len(text), [Segment(seg.start, len(text), seg.kind, seg.family, seg.calls, text=seg.text)])


FORMAT = Format(
    (FAMILY,), (Kind("kimi_k2", (OneOf(START_MARKERS),), parse),), aliases(FAMILY, "kimi_k2"),
    (Template(FAMILY, (SECTION_BEGIN,), rank=45),))
