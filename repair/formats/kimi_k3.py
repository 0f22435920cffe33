"""Kimi K3 (XTML channels over the special tokens `<|open|>`, `<|close|>`, `<|sep|>`):

    <|open|>tools<|sep|><|open|>call tool="f" index="1"<|sep|>
    <|open|>argument key="k" type="string"<|sep|>v<|close|>argument<|sep|>
    <|close|>call<|sep|><|close|>tools<|sep|><|close|>message<|sep|><|end_of_msg|>

An argument's `type` says how its text reads: "string" as written, any other type as the JSON value it holds
(text that is not JSON stays text, typed from the schema). Attribute values escape `"` and `&` as `&quot;` and
`&amp;`. The message's own end markers after the section belong to the call's markup.

The answer's other channels: `<|open|>think<|sep|>...<|close|>think<|sep|>` is reasoning, read as a <think> block
(`repair.core`; one never closed ends where a sibling channel opens), and `<|open|>response<|sep|>...
<|close|>response<|sep|>` is the content: its markers, and the message's end markers (`<|close|>message<|sep|>`,
`<|end_of_msg|>`), are removed one by one wherever they stand (outside inline code and fenced blocks), so the
answer streams between them. A template that opens the think channel in the prompt leaves only its close in the
text: that one stays (what came before it already streamed as content; the engine, which knows the prompt, splits
it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from repair.formats import section
from repair.formats.common import Ctx, ends_with, issue, unwrap_arguments, value_end
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, OneOf
from repair.types import Parsed, RawCall, Segment

FAMILY = "kimi_k3"
OPEN, CLOSE, SEP = "<|open|>", "<|close|>", "<|sep|>"
TOOLS_BEGIN = OPEN + "tools" + SEP
CALL_BEGIN = OPEN + "call "
THINK_OPEN, THINK_CLOSE = OPEN + "think" + SEP, CLOSE + "think" + SEP
RESPONSE_OPEN = OPEN + "response" + SEP
END_OF_MSG = "<|end_of_msg|>"
# removed wherever they stand: the response channel's markers and the message's end markers
MARKERS = (RESPONSE_OPEN, CLOSE + "response" + SEP, CLOSE + "message" + SEP, END_OF_MSG)
THINK_ENDS = (RESPONSE_OPEN, TOOLS_BEGIN)  # the sibling channels that end a think channel never closed
_O, _C, _S = re.escape(OPEN), re.escape(CLOSE), re.escape(SEP)
_ATTR = r'\s+[A-Za-z_][\w-]{0,31}\s*=\s*"[^"<>\n]{0,128}"'
_CALL = re.compile(_O + r"call(?:" + _ATTR + r")*?\s+tool\s*=\s*\"([^\"<>\n]{1,128})\"(?:" + _ATTR + r")*\s*" + _S)
_CALL_END = re.compile(_C + "call" + _S)
_ARG = re.compile(_O + r"argument(?:" + _ATTR + r")*\s*" + _S)
_ARG_END = re.compile(_C + "argument" + _S)
_ATTRS = re.compile(r'([A-Za-z_][\w-]{0,31})\s*=\s*"([^"<>\n]{0,128})"')
_WS = re.compile(r"[ \t\r\n]*")
_ENDS = ends_with(_ARG_END.pattern)
# the section's end, with the message's end markers that follow it
_END = re.compile(_C + "tools" + _S + r"(?:[ \t\r\n]*" + _C + "message" + _S + r")?(?:[ \t\r\n]*<\|end_of_msg\|>)?")


def _unescape(value: str) -> str:
    return value.replace("&quot;", '"').replace("&amp;", "&")


def _attrs(header: str) -> dict[str, str]:
    return {k: _unescape(v) for k, v in _ATTRS.findall(header)}


def _value(raw: str, kind: str | None) -> Any:
    if kind in (None, "string"):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _call(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
    n = len(text)
    call = RawCall(name=_unescape(mb.group(1)).strip(), text_args=True)
    args: dict[str, Any] = {}
    k = mb.end()
    while True:
        k = _WS.match(text, k, stop).end()  # type: ignore[union-attr]
        am = _ARG.match(text, k, stop)
        if am is None:
            break
        attrs = _attrs(am.group(0))
        key = attrs.get("key")
        if not key:
            call.failure = issue("invalid_json", "an argument without its key")
            return call, stop
        vs = am.end()
        nxt = ctx.find(_ARG, vs)
        bound = nxt if nxt != -1 and nxt < stop else stop
        pe, pe_end = value_end(text, _ARG_END, vs, bound, (_ARG,), stop)
        if pe == -1:
            if bound >= n:
                return section.truncated_call(call.name, None, f"the text ends inside argument {key!r}"), n
            call.repairs.append(issue("closing_tag", f"argument end marker missing after {key!r}"))
            pe = pe_end = bound
        args[key] = _value(text[vs:pe], attrs.get("type"))
        k = pe_end
    if stop >= n:
        return section.truncated_call(call.name, None, "the text ends before the call end marker"), n
    call.arguments = args
    unwrap_arguments(call, ctx)
    if call.arguments is not args:
        call.text_args = False
    return call, k


SPEC = section.SectionSpec(
    FAMILY, re.compile(re.escape(TOOLS_BEGIN)), _END, _CALL, _CALL_END, _call, begin_name=TOOLS_BEGIN,
    end_name=CLOSE + "tools" + SEP, call_end_name=CLOSE + "call" + SEP, value_end=_ENDS)


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    return section.parse(SPEC, text, p, ctx)


def parse_marker(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """A channel marker: removed, the text around it kept as content (a paragraph of its own, as after a think
    block)."""
    for marker in MARKERS:
        if text.startswith(marker, p):
            end = p + len(marker)
            return Parsed(end, [Segment(p, end, "content", FAMILY)])
    return None


FORMAT = Format(
    (FAMILY,),
    (Kind("kimi_k3", (OneOf((TOOLS_BEGIN, CALL_BEGIN)),), parse, unfenced=True),
     Kind("kimi_k3_channel", (OneOf(MARKERS),), parse_marker, unfenced=True)),
    aliases(FAMILY, "kimi_k3", "kimik3"),
    (Template(FAMILY, (TOOLS_BEGIN,), rank=44),))
