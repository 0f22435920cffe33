"""Calls as <invoke name="f"><parameter name="k">v</parameter></invoke> in a section:

DeepSeek V3.2:  <｜DSML｜function_calls><｜DSML｜invoke name="f"><｜DSML｜parameter name="k" string="true">v
                </｜DSML｜parameter></｜DSML｜invoke></｜DSML｜function_calls>
DeepSeek V4:    the same in <｜DSML｜tool_calls>...</｜DSML｜tool_calls>
MiniMax-M2:     <minimax:tool_call><invoke name="f"><parameter name="k">v</parameter></invoke></minimax:tool_call>
Step-3:         <｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="f">
                <steptml:parameter name="k">v</steptml:parameter></steptml:invoke><｜tool_call_end｜>
                <｜tool_calls_end｜>
                (and in <function_calls>...</function_calls>, the ｜DSML｜ markers gone; read from `wrapped`)
Doubao-Seed:    <seed:tool_call><function name="f"><parameter name="k" string="true">v</parameter></function>
                </seed:tool_call> (read from `wrapped`, where <seed:tool_call> begins Seed-OSS's own form)

MiniCPM5:       <function name="f"><param name="k">v</param></function>, bare (one block a call, no section
                around them; a value may be wrapped in <![CDATA[...]]>)

MiniMax-M3 writes `]<]minimax[>[` before each tag and names parameters by their tags (`<city>Paris</city>`), in
`<tool_call>...</tool_call>`, at times without the first parameter's opening tag (the value, then `</city>`);
GLM-4.7 and MiniMax-M2 with its section opener lost write a bare `<invoke name="f">` (a call at a line start,
naming a declared tool).

Values are text, byte for byte; `string="false"` marks a JSON value, `string="true"` a string. Without the
attribute values are typed from the declared schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from repair.formats import section
from repair.formats.common import Ctx, ends_with, fail_segment, issue, unwrap_arguments, value_end
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit, Name, OneOf, Ws
from repair.names import one_slip
from repair.types import Parsed, RawCall, Segment

FAMILY_V32 = "deepseek_v32"
FAMILY_V4 = "deepseek_v4"
FAMILY_M2 = "minimax_m2"
FAMILY_STEP3 = "step3"
# the DSML marker as models write it: one or two bars each side (DeepSeek-V4-Flash doubles them), full-width or
# ASCII, and a space after it at times
_DSML = "[｜|]{1,2}DSML[｜|]{1,2} ?"
_D = "(?:" + _DSML + "|steptml:)?"
_Q, _QE = "[\"“]", "[\"”]"  # attribute values in straight or typographic quotes
DSML_V32_BEGIN = "<｜DSML｜function_calls>"
DSML_V4_BEGIN = "<｜DSML｜tool_calls>"
M2_BEGIN = "<minimax:tool_call>"
NS = "]<]minimax[>["  # MiniMax-M3 writes it before every tag
M3_BEGIN = NS + "<tool_call>"
BARE_INVOKE = '<invoke name="'
START_MARKERS = (DSML_V32_BEGIN, DSML_V4_BEGIN, "<|DSML|function_calls>", "<|DSML|tool_calls>", M2_BEGIN,
                 "<｜DSML｜invoke name=", "<｜｜DSML｜｜", "<||DSML||", "<｜DSML｜ ", "<|DSML| ",
                 "<｜tool_calls_begin｜>", M3_BEGIN)
_NS = "(?:" + re.escape(NS) + ")?"
_INVOKE = re.compile(_NS + "<" + _D + r"invoke\s+name\s*=\s*" + _Q + '([^"“”<>\n]{1,128})' + _QE + r"\s*>")
_INVOKE_END = re.compile(_NS + "</" + _D + r"invoke\s*>")
# <city>Paris</city>: the tag names the parameter; a command line flag (`-A`, `--type`, a grep tool's) is a name too
_TAG_NAME = r"-{0,2}[A-Za-z_][A-Za-z0-9_.\-]{0,127}"
_CHILD = re.compile(_NS + "<(" + _TAG_NAME + ")>")


@dataclass(frozen=True)
class _Params:
    """A format's parameter tags: opener (group 1 the name, group 2 the `string` attribute), closer, and whether a
    value may sit in a CDATA section."""

    open: re.Pattern[str]
    end: re.Pattern[str]
    cdata: bool = False


_CDATA = re.compile(r"[ \t\r\n]*<!\[CDATA\[(.*)\]\]>[ \t\r\n]*", re.DOTALL)
_PARAM = re.compile("<" + _D + r"parameter\s+name\s*=\s*" + _Q + '([^"“”<>\n]{1,128})' + _QE
                    + r"(?:\s+string\s*=\s*" + _Q + "(true|false)" + _QE + r")?\s*>")
_PARAM_END = re.compile("</" + _D + r"parameter\s*>")
_DSML_PARAMS = _Params(_PARAM, _PARAM_END)
_WS = re.compile(r"[ \t\r\n]*")
# what a whole call ends with before its end tag (see `section._past_values`): a parameter's end tag, or for
# parameters named by their tags, any end tag
_ENDS = ends_with(_PARAM_END.pattern)
_ENDS_CHILDREN = ends_with(_PARAM_END.pattern, _NS + "</" + _TAG_NAME + r"\s*>")

_V32_BEGIN, _V32_END = "<" + _DSML + "function_calls>", "</" + _DSML + "function_calls>"
# V4 names its section tool_calls; decoded with "tool_" lost it reads calls
_V4_BEGIN, _V4_END = "<" + _DSML + "(?:tool_)?calls>", "</" + _DSML + "(?:tool_)?calls>"


def _value(raw: str, string_attr: str | None, cdata: bool = False) -> Any:
    m = _CDATA.fullmatch(raw) if cdata else None
    if m is not None and "]]>" not in m.group(1):  # one CDATA section: its text (several: kept as written)
        return m.group(1)
    if string_attr != "false":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _child(text: str, k: int, stop: int, args: dict[str, Any]) -> int:
    """A parameter named by its tag (MiniMax-M3, GLM-4.7's bare <invoke>) at `k`: read into `args`; where it
    ended, or -1 when there is none."""
    cm = _CHILD.match(text, k, stop)
    if cm is None or cm.group(1) in ("invoke", "parameter"):
        return -1
    key = cm.group(1)
    closer = re.compile(_NS + "</" + re.escape(key) + r"\s*>")
    pe, pe_end = value_end(text, closer, cm.end(), stop, (_CHILD, _INVOKE_END), stop, last=False)
    if pe == -1:
        return -1
    args[key] = text[cm.end():pe]
    return pe_end


_ELIDED_END = re.compile(re.escape(NS) + "</(" + _TAG_NAME + r")\s*>")


def _elided_first(text: str, k: int, stop: int, call: RawCall, ctx: Ctx, args: dict[str, Any]) -> int:
    """MiniMax-M3's first parameter written without its opening tag (`]<]minimax[>[offerta.docx]<]minimax[>[
    </filename>`): a value holding no markup, closed by a tag naming one of the tool's parameters. Read into
    `args`; where the parameters go on from (`k` when there is none)."""
    v = _WS.match(text, k, stop).end() + len(NS)  # type: ignore[union-attr]
    if not text.startswith(NS, v - len(NS)) or text.startswith("<", v):
        return k
    em = _ELIDED_END.search(text, v, stop)
    if em is None or NS in text[v:em.start()] or em.group(1) not in _declared(call.name, ctx):
        return k
    call.repairs.append(issue("opening_tag", f"the opening tag of parameter {em.group(1)!r} is missing"))
    args[em.group(1)] = text[v:em.start()]
    return em.end()


def _declared(name: str | None, ctx: Ctx) -> dict[str, Any]:
    """The parameters the tool `name` declares ({} when it names none)."""
    tool = ctx.index.resolve(name)
    schema = ctx.index.get(tool).parameters if tool is not None else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props if isinstance(props, dict) else {}


# a parameter written as a self-closing invoke, its value in the `string` attribute (DeepSeek-V4-Flash):
# <｜DSML｜invoke name="cmd" string="echo alpha" />
_SELF_CLOSED = re.compile("<" + _D + r"invoke\s+name\s*=\s*" + _Q + '([^"“”<>\n]{1,128})' + _QE
                          + r"\s+string\s*=\s*" + _Q + '([^"“”\n]*)' + _QE + r"\s*/>")


def _self_closed(text: str, k: int, stop: int, call: RawCall, ctx: Ctx, args: dict[str, Any]) -> int:
    """A self-closing invoke at `k` naming one of the call's declared parameters (and no declared tool), a value
    in its `string` attribute (not the type marker `true` or `false`): read into `args`; where it ended, or -1."""
    m = _SELF_CLOSED.match(text, k, stop)
    if m is None or m.group(2) in ("true", "false") or m.group(1) in args:
        return -1
    key = m.group(1)
    if key not in _declared(call.name, ctx) or ctx.index.resolve(key) is not None:
        return -1
    call.repairs.append(issue("opening_tag", f"parameter {key!r} written as a self-closing invoke"))
    args[key] = m.group(2)
    return m.end()


# a parameter's tag misspelt by one letter, at both ends (MiniMax-M2.5: <paramete name="urls">...</paramete>)
_NEAR_PARAM = re.compile("<" + _D + r"([A-Za-z]{4,16})\s+name\s*=\s*" + _Q + '([^"“”<>\n]{1,128})' + _QE
                         + r"(?:\s+string\s*=\s*" + _Q + "(true|false)" + _QE + r")?\s*>")


def _misspelt(text: str, k: int, stop: int, call: RawCall, ctx: Ctx, args: dict[str, Any]) -> int:
    """A parameter at `k` in a tag one slip from `parameter` (see `names.one_slip`: never its first letter), the
    same tag closing it, naming one of the call's declared parameters: read into `args`; where it ended, or -1.
    Any other tag (HTML, a word that is not `parameter` misspelt, a name the tool does not declare) is not one."""
    m = _NEAR_PARAM.match(text, k, stop)
    if m is None:
        return -1
    tag, key = m.group(1), m.group(2)
    if not one_slip(tag, "parameter") or key in args or key not in _declared(call.name, ctx):
        return -1
    closer = re.compile("</" + _D + re.escape(tag) + r"\s*>")
    pe, pe_end = value_end(text, closer, m.end(), stop, (_NEAR_PARAM, _PARAM, _INVOKE_END), stop, last=False)
    if pe == -1:
        return -1
    call.repairs.append(issue("opening_tag", f"parameter {key!r} in a misspelt tag <{tag}>"))
    args[key] = _value(text[m.end():pe], m.group(3))
    return pe_end


def _call(text: str, mb: re.Match[str], stop: int, ctx: Ctx, children: bool = False,
          tags: _Params | None = None) -> tuple[RawCall, int]:
    tags = tags or _DSML_PARAMS
    n = len(text)
    call = RawCall(name=mb.group(1).strip(), text_args=True)
    args: dict[str, Any] = {}
    k = _elided_first(text, mb.end(), stop, call, ctx, args) if children else mb.end()
    while True:
        k = _WS.match(text, k, stop).end()  # type: ignore[union-attr]
        pm = tags.open.match(text, k, stop)
        if pm is None:
            after = _child(text, k, stop, args) if children else _self_closed(text, k, stop, call, ctx, args)
            if after == -1:
                after = _misspelt(text, k, stop, call, ctx, args)
            if after == -1:
                break
            k = after
            continue
        vs = pm.end()
        nxt = ctx.find(tags.open, vs)
        bound = nxt if nxt != -1 and nxt < stop else stop
        pe, pe_end = value_end(text, tags.end, vs, bound, (tags.open,), stop)
        if pe == -1:
            ve = bound
            if ve >= n:
                return section.truncated_call(call.name, None, f"the text ends inside parameter {pm.group(1)!r}"), n
            call.repairs.append(issue("closing_tag", f"parameter end tag missing after {pm.group(1)!r}"))
            args[pm.group(1)] = _value(text[vs:ve].rstrip(), pm.group(2), tags.cdata)
            k = ve
            continue
        args[pm.group(1)] = _value(text[vs:pe], pm.group(2), tags.cdata)
        k = pe_end
    if stop >= n:  # no </invoke> before the end: more parameters may have been coming
        return section.truncated_call(call.name, None, "the text ends before the invoke end tag"), n
    call.arguments = args
    unwrap_arguments(call, ctx)
    if call.arguments is not args:
        call.text_args = False
    return call, k


def _call_children(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
    return _call(text, mb, stop, ctx, children=True)


def _spec(family: str, begin: str, end: str, children: bool = False) -> section.SectionSpec:
    return section.SectionSpec(family, re.compile(begin), re.compile(end), _INVOKE, _INVOKE_END,
                               _call_children if children else _call, begin_name="section begin tag",
                               end_name="section end tag", call_end_name="invoke end tag",
                               value_end=_ENDS_CHILDREN if children else _ENDS)


SPECS = (
    (re.compile(_V32_BEGIN), _spec(FAMILY_V32, _V32_BEGIN, _V32_END)),
    (re.compile(_V4_BEGIN), _spec(FAMILY_V4, _V4_BEGIN, _V4_END)),
    (re.compile("<minimax:tool_call>"), _spec(FAMILY_M2, "<minimax:tool_call>", "</minimax:tool_call>")),
    (re.compile(re.escape(M3_BEGIN)),
     _spec(FAMILY_M2, re.escape(M3_BEGIN), _NS + "</tool_call>", children=True)),
    (re.compile("<[｜|]tool_calls_begin[｜|]>"), section.SectionSpec(
        FAMILY_STEP3, re.compile("<[｜|]tool_calls_begin[｜|]>"), re.compile("<[｜|]tool_calls_end[｜|]>"),
        re.compile(r'<[｜|]tool_call_begin[｜|]>[ \t\r\n]*(?:function[ \t\r\n]*<[｜|]tool_sep[｜|]>[ \t\r\n]*)?'
                   r'<steptml:invoke\s+name\s*=\s*"([^"<>\n]{1,128})"\s*>'),
        re.compile(r"</steptml:invoke>[ \t\r\n]*(?:<[｜|]tool_call_end[｜|]>)?"), _call,
        begin_name="<｜tool_calls_begin｜>", end_name="<｜tool_calls_end｜>", call_end_name="</steptml:invoke>",
        value_end=_ENDS)),
)
# Doubao-Seed-2.0 (Seed-OSS's <seed:tool_call> section around the same attribute form, tags named `function`):
# <seed:tool_call><function name="f"><parameter name="k" string="true">v</parameter></function></seed:tool_call>
SEED_BEGIN = "<seed:tool_call>"
SEED_FUNCTION = re.compile(r'<function\s+name\s*=\s*"([^"<>\n]{1,128})"\s*>')
SEED = section.SectionSpec("seed_oss", re.compile(re.escape(SEED_BEGIN)), re.compile(re.escape("</seed:tool_call>")),
                           SEED_FUNCTION, re.compile(r"</function\s*>"), _call, begin_name=SEED_BEGIN,
                           end_name="</seed:tool_call>", call_end_name="</function>", bare_call_ok=False,
                           value_end=_ENDS)
# DeepSeek V3.2's section with its ｜DSML｜ markers gone (as some servers pass it on; the shape of Claude's old text
# tool use): <function_calls><invoke name="f"><parameter name="k">v</parameter></invoke></function_calls>, read from
# `wrapped`, where <function_calls> also begins OLMo 3's Python calls
PLAIN_V32_BEGIN = "<function_calls>"
PLAIN_V32 = _spec(FAMILY_V32, re.escape(PLAIN_V32_BEGIN), re.escape("</function_calls>"))


def starts_invoke(text: str, k: int) -> bool:
    """Whether an <invoke name="f"> tag (any of the formats' spellings) begins at `k`."""
    return _INVOKE.match(text, k) is not None

# bare DSML calls (no section opener before them); an opener of either version after them is left-over markup
_BARE = _spec(FAMILY_V32, f"(?:{_V32_BEGIN}|{_V4_BEGIN})", _V32_END)
_BARE_M2 = _spec(FAMILY_M2, "<minimax:tool_call>", "</minimax:tool_call>", children=True)


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    for begin, spec in SPECS:
        if begin.match(text, p):
            return section.parse(spec, text, p, ctx)
    return section.parse(_BARE, text, p, ctx)


def parse_bare(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """<invoke name="f"> without its section (MiniMax-M2 with <minimax:tool_call> lost, GLM-4.7's bare form): a
    call only at a line start, its opening tag whole and naming a declared tool (the candidate kind checks all
    three, so a stream holds a quote of the syntax no longer than its tag), closed by its own </invoke>. Cut off by
    the end of the text (its parameters, then nothing, a value not yet closed or the start of a tag), `truncated`,
    as the same call in its section is."""
    m = _INVOKE.match(text, p)
    if m is None or ctx.index.resolve(m.group(1).strip()) is None:
        return None
    end, nxt = ctx.find(_INVOKE_END, m.end()), ctx.find(_INVOKE, m.end())
    if end == -1 and nxt == -1 and _cut_invoke(text, m.end()):
        return fail_segment(p, len(text), FAMILY_M2, "truncated", "the text ends before the invoke end tag",
                            m.group(1).strip())
    if end == -1 or (nxt != -1 and nxt < end):
        return None  # not closed by its own </invoke>
    return section.parse(_BARE_M2, text, p, ctx)


# the start of a tag the text was cut in: `<`, `</`, `<comm`, `</descr`
_TAG_START = re.compile(r"</?-{0,2}(?:[A-Za-z_][A-Za-z0-9_.\-]{0,127})?")


def _cut_invoke(text: str, k: int) -> bool:
    """Whether the text from `k` to its end is an invoke's parameters cut off: whole parameters (`<parameter
    name="k">` or named by their tags), then nothing, a value whose end tag is not yet written, or the start of a
    tag."""
    while True:
        k = _WS.match(text, k).end()  # type: ignore[union-attr]
        pm = _PARAM.match(text, k)
        cm = _CHILD.match(text, k) if pm is None else None
        if cm is not None and cm.group(1) in ("invoke", "parameter"):
            cm = None
        if pm is None and cm is None:
            return _cut_invoke_tag(text[k:])
        closer = _PARAM_END if cm is None else re.compile("</" + re.escape(cm.group(1)) + r"\s*>")
        pe = closer.search(text, (pm or cm).end())  # type: ignore[union-attr]
        if pe is None:
            return True  # the text ends inside its value
        k = pe.end()


def _cut_invoke_tag(tail: str) -> bool:
    """Whether `tail`, the text's last characters, is nothing or the start of a tag (a parameter's, </invoke>)."""
    if "</invoke>".startswith(tail) or '<parameter name="'.startswith(tail):
        return True
    if ">" in tail or "\n" in tail or len(tail) > 160:
        return False
    return tail.startswith('<parameter name="') or _TAG_START.fullmatch(tail) is not None


# MiniCPM5: <function name="f"><param name="k">v</param></function>, one block a call, with no section around them
FAMILY_MINICPM5 = "minicpm5"
BARE_FUNCTION = '<function name="'
FUNCTION = SEED_FUNCTION  # Doubao-Seed's tag, without its section
_FUNCTION_END = re.compile(r"</function\s*>")
# (<parameter name="k"> too, as Doubao-Seed writes it in the same tag)
_MINICPM5_PARAMS = _Params(re.compile(r'<param(?:eter)?\s+name\s*=\s*"([^"<>\n]{1,128})"()\s*>'),
                           re.compile(r"</param(?:eter)?\s*>"), cdata=True)


def _minicpm5_call(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
    return _call(text, mb, stop, ctx, tags=_MINICPM5_PARAMS)


MINICPM5 = section.SectionSpec(FAMILY_MINICPM5, re.compile(re.escape("<tool_call>")),
                               re.compile(re.escape("</tool_call>")), FUNCTION, _FUNCTION_END, _minicpm5_call,
                               begin_name="<tool_call>", end_name="</tool_call>", call_end_name="</function>",
                               bare_native=True, value_end=ends_with(_MINICPM5_PARAMS.end.pattern))


_PARAM_OPENERS = ('<param name="', '<parameter name="')


def _cut_parameters(text: str, k: int) -> bool:
    """Whether the text from `k` to its end is a block's parameters cut off: whole parameters, then nothing, a
    parameter whose end tag is not yet written, or the start of a parameter's tag or of </function>."""
    while True:
        k = _WS.match(text, k).end()  # type: ignore[union-attr]
        pm = _MINICPM5_PARAMS.open.match(text, k)
        if pm is None:
            return _cut_tag(text[k:])
        pe = _MINICPM5_PARAMS.end.search(text, pm.end())
        if pe is None:
            return True  # the text ends inside its value
        k = pe.end()


def _cut_tag(tail: str) -> bool:
    """Whether `tail`, the text's last characters, is nothing or the start of a parameter's tag or </function>."""
    if "</function>".startswith(tail):
        return True
    return ">" not in tail and "\n" not in tail and len(tail) <= 160 and any(
        o.startswith(tail) or tail.startswith(o) for o in _PARAM_OPENERS)


def parse_function(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """MiniCPM5's <function name="f"> (its calls have no section around them): a call only at a line start, its
    opening tag whole and naming a declared tool, closed by its own </function> with nothing but its parameters
    before it (the same checks as a bare <invoke>, and a record's); consecutive blocks are parallel calls. Cut off
    by the end of the text (its parameters, then nothing or the start of a tag), `truncated`."""
    m = FUNCTION.match(text, p)
    if m is None or ctx.index.resolve(m.group(1).strip()) is None:
        return None
    end, nxt = ctx.find(_FUNCTION_END, m.end()), ctx.find(FUNCTION, m.end())
    if end == -1 and nxt == -1 and _cut_parameters(text, m.end()):
        return fail_segment(p, len(text), FAMILY_MINICPM5, "truncated", "the text ends before </function>",
                            m.group(1).strip())
    if end == -1 or (nxt != -1 and nxt < end):
        return None
    call, after = _minicpm5_call(text, m, end, ctx)
    if call.failure is None and text[after:end].strip():
        return None  # other markup or prose among its parameters: XML the model wrote, not a call
    return section.parse(MINICPM5, text, p, ctx)


# DeepSeek-V4-Flash's call written as elements, its end tags as DSML tokens (opencrabs#419):
# <function>\n<name>bash</name>\n<parameter name="k" string="true">v</｜｜DSML｜｜parameter>\n</｜｜DSML｜｜invoke>
# </｜｜DSML｜｜tool_calls>
ELEMENT = "<function>"
_ELEMENT = re.compile(r"<function>[ \t\r\n]*<name>[ \t]*([^<>\n]{1,128}?)[ \t]*</name>")
_ELEMENT_END = re.compile("</" + _DSML + r"invoke\s*>")  # (the DSML token is what tells the call from XML)
ELEMENT_SPEC = section.SectionSpec(FAMILY_V4, re.compile(_V4_BEGIN), re.compile(_V4_END), _ELEMENT, _ELEMENT_END,
                                   _call, begin_name="section begin tag", end_name="section end tag",
                                   call_end_name="invoke end tag", value_end=_ENDS)


def parse_element(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """An element-style call at a line start: <function><name>f</name>, naming a declared tool, then its
    parameters and nothing else, closed by a DSML invoke end token (and the section's, when written). The same
    elements closed by plain tags are XML the model wrote, and stay text; so does the call cut off by the end of
    the text (nothing tells it from XML before its DSML end)."""
    m = _ELEMENT.match(text, p)
    if m is None or ctx.index.resolve(m.group(1).strip()) is None:
        return None
    end, nxt = ctx.find(_ELEMENT_END, m.end()), ctx.find(_ELEMENT, m.end())
    if end == -1 or (nxt != -1 and nxt < end):
        return None
    call, after = _call(text, m, end, ctx)
    if call.failure is None and text[after:end].strip():
        return None  # other markup or prose among its parameters
    return section.parse(ELEMENT_SPEC, text, p, ctx)


# A harness's record of an earlier call, written into the prompt when a session changes model (oh-my-pi), which the
# model then copies to make its own: <call_record tool="f">\n<parameter name="k">v</parameter>\n</call_record>
RECORD = '<call_record tool="'
RECORD_FAMILY = "text"
_RECORD = re.compile(r'<call_record\s+tool\s*=\s*"([^"<>\n]{1,128})"\s*>')
_RECORD_END = re.compile(r"</call_record\s*>")


def _alone_on_line(text: str, p: int, eol: int = -1) -> bool:
    """Whether only spaces or tabs come before `p` on its line (a record indented as a transcript shows it)."""
    return not text[text.rfind("\n", 0, p) + 1:p].strip(" \t")


def parse_record(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """One <call_record tool="f"> at a line start (indented or not), its parameters, its own </call_record>: the
    call it records. In a sentence, or not closed before the next record, it is a quote; cut off by the end of the
    text, `truncated`."""
    m = _RECORD.match(text, p)
    if m is None or not _alone_on_line(text, p):
        return None
    end, end_at = ctx.find_end(_RECORD_END, m.end())
    nxt = ctx.find(_RECORD, m.end())
    if end == -1 and nxt == -1:
        return fail_segment(p, len(text), RECORD_FAMILY, "truncated", "the text ends before </call_record>",
                            m.group(1).strip())
    if end == -1 or (nxt != -1 and nxt < end):
        return None
    call, after = _call(text, m, end, ctx)
    if text[after:end].strip():
        return None  # not the record's markup alone: a quote
    call.family = RECORD_FAMILY
    return Parsed(end_at, [Segment(p, end_at, "calls", RECORD_FAMILY, [call])])


FORMAT = Format(
    (FAMILY_V32, FAMILY_V4, FAMILY_M2, FAMILY_STEP3, FAMILY_MINICPM5),
    (Kind("invoke", (OneOf(START_MARKERS),), parse),
     # in a sentence, naming no declared tool, or self-closing (<invoke name="f"/>) it is a quote of the syntax
     Kind("invoke_bare", (Lit(BARE_INVOKE), Name(64, ('">', '" >'))), parse_bare, line_start=True),
     # as a bare <invoke>; in a fenced block it is a sample of the XML
     Kind("function_attr", (Lit(BARE_FUNCTION), Name(64, ('">', '" >'))), parse_function, line_start=True,
          unfenced=True),
     Kind("call_record", (Lit(RECORD), Name(64, ('">',))), parse_record, generic=True, line_check=_alone_on_line,
          unfenced=True),
     # as a bare <invoke>, and only when closed by a DSML token (the handler asks it)
     Kind("function_element", (Lit(ELEMENT), Ws(8), Lit("<name>"), Name(64, ("</name>",))), parse_element,
          line_start=True, unfenced=True)),
    (*aliases(FAMILY_V32, "deepseek_v32", "deepseekv32", "deepseek_v3_2"),
     *aliases(FAMILY_V4, "deepseek_v4", "deepseekv4"), *aliases(FAMILY_M2, "minimax_m2", "minimax_m2_5", "minimax_m3"),
     *aliases(FAMILY_STEP3, "step3"), *aliases(FAMILY_MINICPM5, "minicpm5")),
    (Template(FAMILY_M2, (M2_BEGIN,), rank=10), Template(FAMILY_STEP3, ("steptml:invoke",), rank=10),
     Template(FAMILY_V4, ("DSML", "tool_calls"), rank=11), Template(FAMILY_V32, ("DSML",), rank=12),
     Template(FAMILY_MINICPM5, (BARE_FUNCTION, '<param name="'), rank=20)))
