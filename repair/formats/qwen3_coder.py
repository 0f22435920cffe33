"""Qwen3-Coder XML: <tool_call><function=name><parameter=p>value</parameter></function></tool_call>.

Parameter values are text, typed from the declared schema. `<function=name>{json}</function>` (Llama 3.1's
custom-tool form) is read here too, as family llama3.
"""

from __future__ import annotations

import re

from repair.formats.common import (
    Ctx,
    EndLost,
    add_notes,
    close_past_values,
    ends_with,
    fail_segment,
    finish_block,
    issue,
    left_over_opener,
    skip_ws,
    value_end,
)
from repair.formats.spec import Format, Template, aliases
from repair.markers import LINE_START, Kind, Lit, Name, in_code, ticks_after
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "qwen3_coder"
FUNC = "<function="
FUNC_END = "</function>"
PARAM = "<parameter="
PARAM_END = "</parameter>"
OPEN = "<tool_call>"
CLOSE = "</tool_call>"
START_MARKERS = (OPEN, FUNC)
ENDS = ends_with(re.escape(FUNC_END))  # what a whole body ends with (see `common.close_past_values`)
FUNC_MISSING = "</function> missing"
LOST = EndLost(ends_with(re.escape(PARAM_END)), FUNC_MISSING)  # a body whose </function> is missing
_HEAD = re.compile(r"<function=([^>\n<]{0,200})(>?)")
_PHEAD = re.compile(r"<parameter=([^>\n<]{0,200})(>?)")
# A value's closer written wrong (Qwen3.6: `</parameter1>`, `</parameter/>`, `</parameter_function>`, `</parameter`),
# at the end of a value that has no </parameter>; looked for in its last characters only
_DRIFTED_END = re.compile(r"</parameter[\w/]{0,24}>?[ \t\r\n]*\Z")
_DRIFT_WINDOW = 64
# Quotes a model left between a JSON body and its </function> (Llama 3.1: `{"city": "New York"}"</function>`)
_STRAY_BEFORE_END = re.compile(r"[\s\"'`]{1,4}(?=</function>)")
# The call's name written as a first, valueless parameter in place of <function=name> (signalnine/q27#24); what must
# follow it: the call's parameters, or its </function> when it takes none
_OPENER = re.compile(r"<parameter=([A-Za-z0-9_.\-]{1,64})>")
_AFTER_OPENER = re.compile(r"[ \t\r\n]*(?:<parameter=|</function>)")
# A <function=...> header that opens a block (its ">" may be missing, as `_HEAD` allows): its body follows it (a
# parameter, its end, JSON arguments)
_HEADER_WITH_BODY = re.compile(r"<function=[^>\n<]{0,200}>?[ \t\r\n]*(?:<parameter=|</function>|\{)")
_MAX_HEADERS = 64  # headers looked at before an opener slip, back to the last </function>


def _strip_nl(value: str) -> str:
    """A value without the one line break framing it on each side (CRLF or LF)."""
    value = value[2:] if value.startswith("\r\n") else value[1:] if value.startswith("\n") else value
    return value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value


def _drifted_end(text: str, vs: int, ve: int) -> int:
    """Where a value `text[vs:ve]` without its </parameter> ends when it ends with a closer written wrong; -1 when
    it does not."""
    m = _DRIFTED_END.search(text, max(vs, ve - _DRIFT_WINDOW), ve)
    return m.start() if m is not None else -1


def opener_at(text: str, i: int, limit: int, ctx: Ctx) -> re.Match[str] | None:
    """`<parameter=name>` at `i` written in place of `<function=name>`: `name` a declared tool, and the call's
    parameters (or its </function>, when it takes none) right after it; None otherwise."""
    m = _OPENER.match(text, i, limit)
    if m is None or ctx.index.resolve(m.group(1)) is None or _AFTER_OPENER.match(text, m.end(), limit) is None:
        return None
    return m


def starts_call(text: str, i: int, limit: int, ctx: Ctx) -> bool:
    """Whether a <function=...> call, or one opened by its name as a parameter, begins at `i`."""
    return text.startswith(FUNC, i) or opener_at(text, i, limit, ctx) is not None


def _read_params(text: str, k: int, limit: int, ctx: Ctx,
                 call: RawCall) -> tuple[dict[str, str], int, bool] | Failed:
    """The <parameter=...> values of a call from `k` (not past `limit`): the arguments, where they end and whether
    </function> closed them (it is then consumed); closing tags written wrong or missing are noted on `call`."""
    n = len(text)
    args: dict[str, str] = {}
    while True:
        k = skip_ws(text, k, limit)
        pm = _PHEAD.match(text, k, limit)
        if pm is None:
            break
        pname = pm.group(1).strip()
        if not pm.group(2):
            call.repairs.append(issue("closing_tag", "'>' missing after the parameter name"))
        vs = pm.end()
        nxt = ctx.find(PARAM, vs)
        bound = nxt if nxt != -1 and nxt < limit else limit
        pe, pe_end = value_end(text, PARAM_END, vs, bound, (PARAM, FUNC_END, FUNC), limit)
        if pe != -1:
            ve, k = pe, pe_end
        else:
            fe = ctx.find(FUNC_END, vs)
            ve = fe if fe != -1 and fe < bound else bound
            if ve >= n:
                return Failed("truncated", f"the text ends inside parameter {pname!r}", n)
            k = ve
            drift = _drifted_end(text, vs, ve)
            if drift != -1:
                ve = drift
                call.repairs.append(issue("closing_tag", f"malformed </parameter> after {pname!r}"))
            else:
                call.repairs.append(issue("closing_tag", f"</parameter> missing after {pname!r}"))
        args[pname] = _strip_nl(text[vs:ve])
    if text.startswith(FUNC_END, k):
        return args, k + len(FUNC_END), True
    return args, k, False


def parse_functions(text: str, i: int, limit: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """One or more <function=...> blocks starting at `i`, not past `limit`."""
    n = len(text)
    calls: list[RawCall] = []
    while ctx.room(len(calls)):
        i = skip_ws(text, i, limit)
        m = _HEAD.match(text, i, limit)
        opened = opener_at(text, i, limit, ctx) if m is None else None
        head = m or opened
        if head is None:
            break
        name = head.group(1).strip()
        call = RawCall(name=name, family=FAMILY, text_args=True)
        if opened is not None:
            call.repairs.append(issue("opening_tag", f"<function={name}> written as <parameter={name}>"))
        elif not head.group(2):
            call.repairs.append(issue("closing_tag", "'>' missing after the function name"))
        k = skip_ws(text, head.end(), limit)
        if m is not None and k < limit and text[k] == "{":
            got = decode_at(text, k, limit, max_closers=0, budget=ctx.budget)
            if isinstance(got, Failed):
                return got
            call.family, call.text_args, call.arguments = "llama3", False, got.value
            add_notes(call, got.repairs)
            k = skip_ws(text, got.end, limit)
            stray = _STRAY_BEFORE_END.match(text, k, limit)
            if stray is not None and stray.end() > k:
                call.repairs.append(issue("json_syntax", f"{text[k:stray.end()].strip()!r} before </function>"))
                k = stray.end()
            if text.startswith(FUNC_END, k):
                k += len(FUNC_END)
            elif k >= n:
                call.repairs.append(issue("truncated", "the text ends before </function>"))
            else:
                call.repairs.append(issue("closing_tag", FUNC_MISSING))
            calls.append(call)
            i = k
            continue
        got_params = _read_params(text, k, limit, ctx, call)
        if isinstance(got_params, Failed):
            return got_params
        args, k, closed = got_params
        if not closed and k >= n:
            return Failed("truncated", "the text ends before </function>; more parameters may follow", n)
        if not closed and opened is not None:
            break  # a name written as a parameter is a call's opener only where its </function> closes it
        if not closed:
            call.repairs.append(issue("closing_tag", FUNC_MISSING))
        call.arguments = args
        calls.append(call)
        i = k
    if not calls:
        return Failed("invalid_json", "no <function=...> block", i)
    if len(calls) > 1:
        calls[0].repairs.append(issue("merged_calls", f"{len(calls)} calls in one block"))
    return calls, i


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """<function=...> without the <tool_call> around it."""
    n = len(text)
    next_open = ctx.find(OPEN, p)
    limit = next_open if next_open != -1 else n
    close = ctx.find(CLOSE, p)
    if close != -1 and close < limit:
        got, close = close_past_values(text, ctx, lambda lim: parse_functions(text, p, lim, ctx),
                                       parse_functions(text, p, close, ctx), close, CLOSE, ENDS, limit, LOST)
    else:
        close = -1
        got = parse_functions(text, p, limit, ctx)
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, FAMILY, "truncated", got.detail)
        return None
    calls, i = got
    first = calls[0]
    if first.family != "llama3" and text.find(PARAM, p, i) == -1 and text.find(FUNC_END, p, i) == -1:
        return None  # a mention of the syntax, not a call
    if first.family == "llama3" and close == -1:
        return Parsed(i, [Segment(p, i, "calls", "llama3", calls)])
    first.repairs.append(issue("opening_tag", "<tool_call> missing"))
    if close == -1:
        if skip_ws(text, i) >= n:
            return Parsed(n, [Segment(p, n, "calls", first.family, calls)])
        if _ends_at_tag(text, p, i):  # the last call ended at its own end tag
            i = left_over_opener(text, i, OPEN, calls)
        return Parsed(i, [Segment(p, i, "calls", first.family, calls)])
    end, junk = finish_block(text, i, close, len(CLOSE), first)
    end = left_over_opener(text, end, OPEN, calls)
    return Parsed(end, [Segment(p, end, "calls", first.family, calls, text=junk)])


def _ends_at_tag(text: str, p: int, i: int) -> bool:
    """Whether `text[p:i]` ends with `</function>`, whitespace after it aside."""
    while i > p and text[i - 1] in " \t\r\n":
        i -= 1
    return text.endswith(FUNC_END, p, i)


def _quoted(text: str, at: int) -> bool:
    """Whether `at` lies in inline code (a code span open before it on its line)."""
    return in_code(ticks_after(LINE_START, text, text.rfind("\n", 0, at) + 1, at))


def _open_block(text: str, p: int) -> bool:
    """Whether a <function=...> block is open at `p`: a header after the last </function> before `p`, outside
    inline code and followed by a body (a parameter, the block's end, JSON arguments). A header quoted in a code
    span or named in a sentence opens nothing; past `_MAX_HEADERS` of them the block is taken as open."""
    floor = text.rfind(FUNC_END, 0, p) + 1
    at = p
    for _ in range(_MAX_HEADERS):
        at = text.rfind(FUNC, floor, at)
        if at == -1:
            return False
        if _HEADER_WITH_BODY.match(text, at) is not None and not _quoted(text, at):
            return True
    return True


def parse_opener(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """A call opened by its name as a parameter (`<parameter=name>` for `<function=name>`, see `opener_at`), with no
    <tool_call> before it; not a parameter of an open <function=...> block."""
    if _open_block(text, p):
        return None
    return parse(text, p, ctx)


FORMAT = Format(
    ("qwen3_coder",), (Kind("qwen3_function", (Lit(FUNC),), parse),
                       Kind("qwen3_parameter_opener", (Lit(PARAM), Name(64, (">",))), parse_opener, generic=True)),
    aliases(FAMILY, "qwen3_coder", "qwen3_xml", "qwen3coder", "step3p5"),
    (Template(FAMILY, (FUNC, PARAM), rank=50),))
