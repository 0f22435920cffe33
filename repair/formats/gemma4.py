"""Gemma 4: <|tool_call>call:name{key:<|"|>value<|"|>,n:5}<tool_call|>; FunctionGemma uses
<start_function_call>call:name{key:<escape>value<escape>}<end_function_call>. Openers some checkpoints slip into:
`<|tool_call>:name{...}` (`call` left out) and `<tool_call:name{...}>` (the opener and `call:` run together; read at
a line start, naming a declared tool). Its thinking channel, `<|channel>thought\n...<channel|>`, is reasoning."""

from __future__ import annotations

import json
import re
from typing import Any

from repair.formats import pythonic, section
from repair.formats.common import Ctx, add_notes, issue, skip_ws
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit, Name, OneOf
from repair.salvage import Failed, loads
from repair.types import Parsed, RawCall, Segment, json_object

FAMILY = "gemma4"
OPEN, CLOSE, QUOTE = "<|tool_call>", "<tool_call|>", '<|"|>'
FG_OPEN, FG_CLOSE, FG_QUOTE = "<start_function_call>", "<end_function_call>", "<escape>"
START_MARKERS = (OPEN, FG_OPEN)
_NAME = r"([A-Za-z0-9_.\-]{1,128}(?::[A-Za-z0-9_.\-]{1,128})*)"  # an MCP tool's namespaced name keeps its colons
_CALL = re.compile(r"call:" + _NAME + r"\s*")
_SECTION_CALL = re.compile(r"(?:call)?:" + _NAME + r"\s*")  # (after the opener `call` may be left out)
COLLAPSED = "<tool_call"  # `<tool_call:name{...}`: `<|tool_call>call:` run together
_BARE_KEY = re.compile(r"(?<=[{,])(\s*)([A-Za-z_][A-Za-z0-9_\-]*)(\s*):")
_INTERESTING = {q: re.compile("[{}]|" + re.escape(q)) for q in (QUOTE, FG_QUOTE)}
_PARENS = {q: re.compile("[()]|" + re.escape(q)) for q in (QUOTE, FG_QUOTE)}


def _keys(chunk: str, after_brace: bool) -> str:
    """Quote bare keys in a chunk of non-string text (a key follows "{" or ",")."""
    return _BARE_KEY.sub(r'\1"\2"\3:', ("{" + chunk) if after_brace else chunk)[1 if after_brace else 0:]


# a value in single quotes right before a delimiter that opens nothing (`pattern:':\s*'<|"|>}`): Gemma 4 began the
# string with a quote and closed it with the quote and its own delimiter
_SINGLE_QUOTED_BEFORE = re.compile(r":[ \t]*'[^'\n]*'[ \t]*\Z")
_VALUE_END = re.compile(r"[ \t]*[,}]")


def _object(text: str, i: int, limit: int, quote: str, dropped: list[int] | None = None) -> tuple[str, int] | None:
    """The object at text[i] == "{" converted to JSON text, and where it ended; None when it does not close. A
    delimiter right after a single-quoted value and right before the member's end is dropped (its place is added
    to `dropped`)."""
    out: list[str] = []
    depth = 0
    pos = i
    prev = ""
    pat = _INTERESTING[quote]
    while True:
        m = pat.search(text, pos, limit)
        if m is None:
            return None
        chunk = text[pos:m.start()]
        if pos < m.start():
            out.append(_keys(chunk, prev == "{"))
        tok = m.group()
        if (tok == quote and _SINGLE_QUOTED_BEFORE.search(chunk) is not None
                and _VALUE_END.match(text, m.end(), limit) is not None):
            if dropped is not None:
                dropped.append(m.start())
            pos = m.end()
            prev = "'"
            continue
        if tok == quote:
            close = text.find(quote, m.end(), limit)
            if close == -1:
                return None
            out.append(json.dumps(text[m.end():close], ensure_ascii=False))
            pos = close + len(quote)
            prev = '"'
            continue
        out.append(tok)
        pos = m.end()
        prev = tok
        depth += 1 if tok == "{" else -1
        if depth > 128:
            return None
        if depth == 0:
            return "".join(out), pos


_LAST_KEY = re.compile(r"[{,][ \t\r\n]*[A-Za-z_][A-Za-z0-9_\-]*[ \t]*:[ \t]*\Z")


def _closed_last(text: str, k: int, stop: int, quote: str) -> tuple[str, int] | None:
    """The object at `k` when its last value was opened with `quote` and never closed, the object's brace and
    nothing else after it before the call's end at `stop` (Gemma 4: `command:<|"|>ls}<tool_call|>`): converted as
    `_object` does with the value closed at that brace. None for any other shape (an open value before another
    member: where it ends would be a guess)."""
    inner = text[k:stop].rstrip()
    if not inner.endswith("}"):
        return None
    body = inner[:-1]
    opener = body.rfind(quote)
    if opener == -1 or body.count(quote) % 2 == 0 or _LAST_KEY.search(body, 0, opener) is None:
        return None
    patched = body + quote + "}"
    obj = _object(patched, 0, len(patched), quote)
    if obj is None or obj[1] != len(patched):
        return None
    return obj[0], k + len(inner)


def _call_for(quote: str) -> section.CallParser:
    def parse_call(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
        call, end = _read_call(text, mb, stop, ctx, quote)
        if call.failure is None and not mb.group().startswith("call"):
            collapsed = text.endswith(COLLAPSED, 0, mb.start())
            call.repairs.append(issue("opening_tag", f"{OPEN}call: written as {COLLAPSED}:" if collapsed else
                                      f"call left out after {OPEN}"))
            if collapsed and text.startswith(">", end, stop):  # the run-together opener closed as a tag
                end += 1
        return call, end
    return parse_call


def _read_call(text: str, mb: re.Match[str], stop: int, ctx: Ctx, quote: str) -> tuple[RawCall, int]:
    """One call from its name (`mb`) on, and where it ended."""
    n = len(text)
    call = RawCall(name=mb.group(1), family=FAMILY)
    k = mb.end()
    if k < stop and text[k] == "(":
        if text.find(quote, k, stop) != -1:
            return _quoted_paren_call(text, call, k, stop, quote, ctx)
        return _paren_call(text, call, k, stop)
    if k >= stop or text[k] != "{":
        if k >= n:
            return section.truncated_call(call.name, FAMILY, "the text ends before the arguments"), n
        call.arguments = {}
        return call, k
    dropped: list[int] = []
    obj = _object(text, k, stop, quote, dropped)
    if obj is None and stop < n and (obj := _closed_last(text, k, stop, quote)) is not None:
        call.repairs.append(issue("json_syntax", f"the last value's closing {quote} missing before the brace"))
    if obj is None:
        if stop >= n:
            return section.truncated_call(call.name, FAMILY, "the text ends inside the arguments"), n
        call.failure = issue("invalid_json", "arguments object does not close")
        return call, stop
    got = loads(obj[0], budget=ctx.budget)
    if not isinstance(got, Failed):
        call.arguments = got.value
        add_notes(call, got.repairs)
        if dropped:
            call.repairs.append(issue("json_syntax", f"a stray {quote} after a single-quoted value dropped"))
    elif (assigned := _assigned(text, k, obj[1], quote, _declared(call.name, ctx))) is not None:
        call.arguments = assigned
        call.repairs.append(issue("json_syntax", ASSIGNED))
    else:
        call.failure = issue(got.kind, got.detail)
    return call, obj[1]


ASSIGNED = "`key=value` written for `key:value`"
_ASSIGN = re.compile(r"[ \t\r\n]*([A-Za-z_][A-Za-z0-9_\-]*)[ \t]*([:=])[ \t]*")
_SCALAR = re.compile(r"'([^'\\\n]*)'|\"(?:[^\"\\\n]|\\.)*\"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])"
                     r"|(?:true|false|null|True|False|None)(?![\w.])")
_PYTHON = {"True": True, "False": False, "None": None}


def _declared(name: str | None, ctx: Ctx) -> dict[str, Any]:
    resolved = ctx.index.resolve(name) if name is not None else None
    if resolved is None:
        return {}
    return json_object((ctx.index.get(resolved).parameters or {}).get("properties"), {})


def _assigned(text: str, k: int, end: int, quote: str, props: dict[str, Any]) -> dict[str, Any] | None:
    """The object from `k` ("{") to `end` (after its "}") read as members `key=value` (ollama #17882: Gemma 4
    drifting to Python's keywords), the format's own `key:value` among them: every key a declared parameter, once;
    every value a string (between the format's delimiters, or quotes with nothing to unescape in single ones), a
    number, a boolean or null. None otherwise, or when no member uses `=`."""
    out: dict[str, Any] = {}
    i, stop, assigned = k + 1, end - 1, False
    while True:
        m = _ASSIGN.match(text, i, stop)
        if m is None or m.group(1) not in props or m.group(1) in out:
            return None
        assigned = assigned or m.group(2) == "="
        got = _scalar(text, m.end(), stop, quote)
        if got is None:
            return None
        out[m.group(1)], i = got
        j = skip_ws(text, i, stop)
        if j >= stop:
            return out if assigned else None
        if text[j] != ",":
            return None
        i = j + 1


def _scalar(text: str, i: int, stop: int, quote: str) -> tuple[Any, int] | None:
    if text.startswith(quote, i):
        close = text.find(quote, i + len(quote), stop)
        return None if close == -1 else (text[i + len(quote):close], close + len(quote))
    m = _SCALAR.match(text, i, stop)
    if m is None:
        return None
    if m.group(1) is not None:
        return m.group(1), m.end()
    if m.group() in _PYTHON:
        return _PYTHON[m.group()], m.end()
    try:
        return json.loads(m.group()), m.end()
    except ValueError:
        return None


def _paren_call(text: str, call: RawCall, k: int, stop: int) -> tuple[RawCall, int]:
    """call:name(k="v", n=1): Python keyword arguments."""
    e = pythonic.extent(text, k, stop)
    if e is None:
        if stop >= len(text):
            return section.truncated_call(call.name, FAMILY, "the text ends inside the arguments"), len(text)
        call.failure = issue("invalid_json", "the argument list does not close")
        return call, stop
    if e == -1:
        call.failure = issue("invalid_json", "not a Python argument list")
        return call, stop
    parsed = pythonic.parse_calls("f" + text[k:e], FAMILY)
    if not isinstance(parsed, Failed) and parsed[0].failure is None:
        call.arguments = parsed[0].arguments
        return call, e
    got = loads("{" + text[k + 1:e - 1] + "}")  # call:name(key: "value", n: 1): keys and colons, as in an object
    if isinstance(got, Failed) or not isinstance(got.value, dict):
        call.failure = issue("invalid_json", "the argument list is neither Python keywords nor key: value pairs")
    else:
        call.arguments = got.value
        add_notes(call, got.repairs)
    return call, e


def _paren_end(text: str, k: int, stop: int, quote: str) -> int | None:
    """End of the argument list opening at text[k] == "(" (after its ")"), strings between `quote`s skipped; None
    when it does not close before `stop`."""
    depth = 0
    pos = k
    pat = _PARENS[quote]
    while True:
        m = pat.search(text, pos, stop)
        if m is None:
            return None
        if m.group() == quote:
            close = text.find(quote, m.end(), stop)
            if close == -1:
                return None
            pos = close + len(quote)
            continue
        pos = m.end()
        depth += 1 if m.group() == "(" else -1
        if depth == 0:
            return pos


def _quoted_paren_call(text: str, call: RawCall, k: int, stop: int, quote: str, ctx: Ctx) -> tuple[RawCall, int]:
    """call:name(key:<|"|>value<|"|>, n:1): key: value pairs with the format's own string delimiters, read as the
    braces of `call:name{...}` are."""
    e = _paren_end(text, k, stop, quote)
    if e is None:
        if stop >= len(text):
            return section.truncated_call(call.name, FAMILY, "the text ends inside the arguments"), len(text)
        call.failure = issue("invalid_json", "the argument list does not close")
        return call, stop
    body = "{" + text[k + 1:e - 1] + "}"
    dropped: list[int] = []
    obj = _object(body, 0, len(body), quote, dropped)
    got = loads(obj[0], budget=ctx.budget) if obj is not None and obj[1] == len(body) else None
    if got is None or isinstance(got, Failed) or not isinstance(got.value, dict):
        call.failure = issue("invalid_json", "the argument list is not key: value pairs")
    else:
        call.arguments = got.value
        add_notes(call, got.repairs)
        if dropped:
            call.repairs.append(issue("json_syntax", f"a stray {quote} after a single-quoted value dropped"))
    return call, e


def _spec(opener: str, closer: str, quote: str, begin: str) -> section.SectionSpec:
    return section.SectionSpec(FAMILY, re.compile(begin), re.compile(re.escape(closer)), _SECTION_CALL, None,
                               _call_for(quote), begin_name=opener, end_name=closer, merged_note=True,
                               bare_call_ok=False)


SPEC = _spec(OPEN, CLOSE, QUOTE, re.escape(OPEN) + "|" + re.escape(COLLAPSED) + "(?=:)")
FG_SPEC = _spec(FG_OPEN, FG_CLOSE, FG_QUOTE, re.escape(FG_OPEN))


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    return section.parse(FG_SPEC if text.startswith(FG_OPEN, p) else SPEC, text, p, ctx)


def _split_declared(inner: str, props: dict[str, Any]) -> dict[str, str] | None:
    """`query:meet at 10:00, 11:00 tomorrow, n:5` (string delimiters stripped): each value runs to the next
    `, key:` that names a declared parameter (`11:` does not), or to the end; None unless it starts with one."""
    if not props:
        return None
    keys = "|".join(re.escape(k) for k in sorted(props, key=len, reverse=True))
    pat = re.compile(r"(?:^|,)\s*(" + keys + r")\s*:")
    ms = list(pat.finditer(inner))
    if not ms or ms[0].start() != 0 or not inner[:ms[0].end()].startswith(ms[0].group(1)):
        return None
    out: dict[str, str] = {}
    for m, nxt in zip(ms, [*ms[1:], None], strict=True):
        if m.group(1) in out:
            return None
        out[m.group(1)] = inner[m.end():nxt.start() if nxt is not None else len(inner)].strip()
    return out


def parse_stripped(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """`call:name{key:value}` alone on its line, as a server that strips special tokens leaves Gemma's call
    (`<|tool_call>` and the `<|"|>` around strings gone): a call when the name is a declared tool's (outside a
    fenced block: the finder asks that of the kind)."""
    m = _CALL.match(text, p)
    resolved = ctx.index.resolve(m.group(1)) if m is not None else None
    if m is None or resolved is None or not text.startswith("{", m.end()):
        return None
    k = m.end()
    nl = text.find("\n", k)
    end = len(text[:nl if nl != -1 else len(text)].rstrip())
    if end <= k + 1 or text[end - 1] != "}" or text.find(QUOTE, k, end) != -1:
        return None  # (with its <|"|> still there the tokens were not stripped: the syntax quoted, not a call)
    call = RawCall(name=m.group(1), family=FAMILY)
    call.repairs.append(issue("opening_tag", f"{OPEN} missing (special tokens stripped)"))
    obj = _object(text, k, end, QUOTE)
    got = loads(obj[0], budget=ctx.budget) if obj is not None and obj[1] == end else None
    if got is not None and not isinstance(got, Failed) and isinstance(got.value, dict):
        call.arguments = got.value
        add_notes(call, got.repairs)
    elif (assigned := _assigned(text, k, end, QUOTE, _declared(resolved, ctx))) is not None:
        call.arguments = assigned
        call.repairs.append(issue("json_syntax", ASSIGNED))
    else:
        split = _split_declared(text[k + 1:end - 1].strip(), _declared(resolved, ctx))
        if split is None:
            return None
        call.arguments, call.text_args = split, True
    return Parsed(end, [Segment(p, end, "calls", FAMILY, [call])])


CHANNEL_OPEN, CHANNEL_CLOSE, THOUGHT = "<|channel>", "<channel|>", "thought"


def parse_channel(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """`<|channel>thought\n...<channel|>`: reasoning, without its `thought` label (as vLLM's Gemma 4 reasoning
    parser reads it). It ends at its close or where a call opens first (a call token ends the thinking, as vLLM's
    parser has it: the call is read), else at the end of the text. A channel of another name is left as it is."""
    b = p + len(CHANNEL_OPEN)
    if not text.startswith(THOUGHT, b):
        return None
    b += len(THOUGHT)
    b += 1 if text.startswith("\n", b) else 0
    close, call = ctx.find(CHANNEL_CLOSE, b), ctx.find(OPEN, b)
    if close != -1 and (call == -1 or close < call):
        e, end = close, close + len(CHANNEL_CLOSE)
    else:
        e = end = call if call != -1 else len(text)
    return Parsed(end, [Segment(p, end, "reasoning", FAMILY, text=text[b:e])])


def _line_may_call(text: str, p: int, end: int) -> bool:
    """What `parse_stripped` asks of the line from `p` to `end` (a stream holds the candidate only to its line's
    end; in a fenced block the kind is not a candidate: `Kind.unfenced`)."""
    line = text[p:end].rstrip()
    return line.endswith("}") and QUOTE not in line


FORMAT = Format(
    (FAMILY,), (Kind("gemma4", (OneOf(START_MARKERS),), parse),
                Kind("gemma4_channel", (Lit(CHANNEL_OPEN),), parse_channel),
                Kind("gemma4_stripped", (Lit("call:"), Name(64, ("{",))), parse_stripped, line_start=True,
                     generic=True, line_check=_line_may_call, unfenced=True),
                # (not the format's own markup: read only at a line start, naming a declared tool, as generic forms)
                Kind("gemma4_collapsed", (Lit(COLLAPSED + ":"), Name(64, ("{",))), parse, line_start=True,
                     generic=True)),
    aliases(FAMILY, "gemma4", "gemma3", "function_gemma", "functiongemma"),
    (Template(FAMILY, (OPEN, CLOSE), rank=5), Template(FAMILY, (FG_OPEN,), rank=6)))
