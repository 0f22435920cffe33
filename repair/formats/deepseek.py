"""DeepSeek V3 and V3.1 tool calls.

V3:   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>name\\n```json\\n{...}\\n```<｜tool▁call▁end｜>
      <｜tool▁calls▁end｜>
V3.1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>name<｜tool▁sep｜>{...}<｜tool▁call▁end｜><｜tool▁calls▁end｜>
The full-width bars are also accepted as ASCII "|".
"""

from __future__ import annotations

import re

from repair.formats import section
from repair.formats.common import Ctx, add_notes, issue
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, OneOf
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall

FAMILY_V3 = "deepseek_v3"
FAMILY_V31 = "deepseek_v31"


def _tok(name: str) -> re.Pattern[str]:
    return re.compile("<[｜|]" + name + "[｜|]>")


SEP = _tok("tool▁sep")
START_MARKERS = ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<|tool▁calls▁begin|>", "<|tool▁call▁begin|>")
_V3_HEAD = re.compile(r"[ \t]*([A-Za-z0-9_.\-]{1,128})[ \t]*\r?\n?[ \t]*(?:```[A-Za-z]*[ \t]*\r?\n?)?")
_FENCE_END = re.compile(r"\s*```")


def _call(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
    n = len(text)
    hs = mb.end()
    s, s_end = ctx.find_end(SEP, hs)
    if s == -1 or s >= stop or s - hs > 200:
        if stop >= n:
            return section.truncated_call(None, FAMILY_V31, "the text ends inside a call header"), n
        return RawCall(name=None, family=FAMILY_V31, failure=issue("invalid_json", "call without a separator")), stop
    head = text[hs:s].strip()
    call = RawCall(name=head, family=FAMILY_V31)
    a = s_end
    fenced = False
    if head == "function":
        hm = _V3_HEAD.match(text, s_end, stop)
        if hm is not None and hm.end() > s_end:
            call.name, call.family, a = hm.group(1), FAMILY_V3, hm.end()
            fenced = "```" in hm.group()
    got = decode_at(text, a, stop, max_closers=0 if stop >= n else 1, budget=ctx.budget)
    if isinstance(got, Failed):
        call.failure = issue(got.kind, got.detail)
        return call, n if got.kind == "truncated" else stop
    call.arguments = got.value
    add_notes(call, got.repairs)
    after = got.end
    if fenced:
        fm = _FENCE_END.match(text, after, stop)
        if fm is not None:
            after = fm.end()
    return call, after


SPEC = section.SectionSpec(
    FAMILY_V31, _tok("tool▁calls▁begin"), _tok("tool▁calls▁end"), _tok("tool▁call▁begin"), _tok("tool▁call▁end"),
    _call, begin_name="tool-calls begin marker", end_name="tool-calls end marker", call_end_name="call end marker")


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    return section.parse(SPEC, text, p, ctx)


FORMAT = Format(
    (FAMILY_V3, FAMILY_V31), (Kind("deepseek", (OneOf(START_MARKERS),), parse),),
    (*aliases(FAMILY_V3, "deepseek_v3", "deepseekv3", "deepseek_r1"),
     *aliases(FAMILY_V31, "deepseek_v31", "deepseekv31", "deepseek_v3_1")),
    (Template(FAMILY_V3, ("tool▁calls▁begin", "```json"), rank=60),
     Template(FAMILY_V3, ("tool▁call▁begin", "```json"), rank=60),
     Template(FAMILY_V31, ("tool▁calls▁begin",), rank=61), Template(FAMILY_V31, ("tool▁call▁begin",), rank=62)))
