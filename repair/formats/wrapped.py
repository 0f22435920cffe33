"""Calls in a block between an opening and (optionally) a closing marker, where the block's body is a common
form: JSON call objects, `{"name": {args}}` objects, Python calls, Qwen3-Coder XML, or GLM argument tags.

| family          | block                                                         | body                    |
|-----------------|---------------------------------------------------------------|-------------------------|
| minimax         | <tool_calls>...</tool_calls> (MiniMax-Text, Hunyuan-A13B, Jamba) | JSON objects / a list |
| hy_v3           | <tool_calls><tool_call>name<tool_sep><arg_key>..</tool_call></tool_calls> | GLM tags  |
| granite         | <\\|tool_call\\|>[...] (<\\|/tool_call\\|> read when written)       | JSON list               |
| granite_20b_fc  | <function_call> {...}                                         | JSON object             |
| internlm2       | <\\|action_start\\|><\\|plugin\\|>{...}<\\|action_end\\|>       | JSON object             |
| phi4_mini       | functools[...]                                                | JSON list               |
| gigachat3       | <\\|function_call\\|>{...}, function call<\\|role_sep\\|>{...}  | JSON object             |
| apertus         | <\\|tools_prefix\\|>[{"name": {...}}]<\\|tools_suffix\\|>      | name -> arguments       |
| lmstudio        | [TOOL_REQUEST]{...}[END_TOOL_REQUEST]                         | JSON object             |
| minimax_m2      | [TOOL_CALL]{tool => "f", args => {--k "v"}}[/TOOL_CALL]       | arrow `--key`s, JSON; JSON calls |
| longcat         | <longcat_tool_call>...</longcat_tool_call>                    | GLM tags (longcat_) / JSON |
| seed_oss        | <seed:tool_call><function=..>...</seed:tool_call>             | Qwen3-Coder XML (or `invoke.SEED`) |
| llama4_pythonic | <\\|python_start\\|>[f(a=1)]<\\|python_end\\|>                  | Python calls            |
| olmo3           | <function_calls>f(a=1)\\ng(b=2)</function_calls>              | Python calls, `invoke.PLAIN_V32` |
| hermes          | <tools>{...}</tools> (Qwen2.5-Coder's slip for <tool_call>)   | JSON objects            |
| nemotron_json   | <TOOLCALL>[...]</TOOLCALL> (Nemotron), <toolcall> (Nemotron-Mini) | JSON list, Python calls |
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from repair.formats import glm45, hermes, invoke, llama3, pythonic, qwen3_coder, section
from repair.formats.common import (
    Block,
    Ctx,
    EndLost,
    add_notes,
    close_past_values,
    decode_calls,
    ends_with,
    fail_segment,
    finish_block,
    issue,
    open_block,
    skip_ws,
)
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit, Node, Ws
from repair.salvage import Failed, decode_at
from repair.types import Parsed, RawCall, Segment

Body = Callable[[str, int, int, int, Ctx], "tuple[list[RawCall], int] | Failed"]


def json_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """JSON call objects: one, a list, or several separated by newlines, commas or semicolons."""
    if b >= limit or text[b] not in "{[":
        return Failed("invalid_json", "no JSON call", b)
    return hermes.json_body(text, b, limit, bound, ctx)


def json_lines_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """JSON call objects one a line (MiniMax): a line that is not a call is reported and the next one read."""
    if b >= limit or text[b] not in "{[":
        return Failed("invalid_json", "no JSON call", b)
    if text[b] == "[":
        return hermes.json_body(text, b, limit, bound, ctx)
    calls: list[RawCall] = []
    i = b
    while i < limit and ctx.room(len(calls)):
        nl = text.find("\n", i, limit)
        line_end = nl if nl != -1 else limit
        got = decode_calls(text, i, limit, "minimax", ctx)
        if isinstance(got, Failed):
            if got.kind == "truncated" and not calls:
                return got
            detail = "the text ends inside a call" if got.kind == "truncated" else got.detail
            calls.append(RawCall(name=None, failure=issue(got.kind if calls else "invalid_json", detail)))
            if got.kind == "truncated":
                return calls, limit
            i = line_end
        else:
            calls.extend(got[0])
            i = got[1]
        i = skip_ws(text, i, limit)
        if i < limit and text[i] not in "{[":
            nl = text.find("\n", i, limit)
            if nl == -1:
                break
            i = skip_ws(text, nl, limit)
    if not calls or all(c.failure is not None for c in calls):
        return Failed("invalid_json", "no JSON call", b)
    return calls, i


def name_args_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """A list (or one) of {"name": {arguments}} objects; the usual {"name": ..., "arguments": ...} shape too."""
    got = decode_at(text, b, limit, max_closers=2 if limit >= len(text) else 1, budget=ctx.budget)
    if isinstance(got, Failed):
        return got
    items = got.value if isinstance(got.value, list) else [got.value]
    calls: list[RawCall] = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
            calls.append(RawCall(name=name, arguments=args))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            calls.append(RawCall(name=item["name"], arguments=item.get("arguments", item.get("parameters"))))
        else:
            return Failed("invalid_json", "JSON that is not a tool call", got.end)
    if not calls:
        return Failed("invalid_json", "empty call list", got.end)
    add_notes(calls[0], got.repairs)
    return calls, got.end


def pythonic_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """`[f(a=1), g()]`, or bare calls one after another (newlines or commas between them)."""
    return pythonic.parse_lines(text, b, limit, ctx)


def llama4_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """Python calls, or Llama's JSON call objects ({"name": ..., "parameters": {...}})."""
    if b < limit and text[b] == "{":
        return llama3.json_calls(text, b, limit, "llama4_pythonic", ctx)
    return pythonic_body(text, b, limit, bound, ctx)


def nemotron_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """JSON call objects (a list, or one), or Python calls (`[f(a=1)]`, `f(a=1)`) where a call's name begins."""
    k = skip_ws(text, b + 1, limit) if b < limit and text[b] == "[" else b
    if k < limit and (text[k].isalpha() or text[k] == "_"):
        return pythonic_body(text, b, limit, bound, ctx)
    return json_body(text, b, limit, bound, ctx)


def qwen3_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    if not text.startswith(qwen3_coder.FUNC, b):
        return json_body(text, b, limit, bound, ctx)
    return qwen3_coder.parse_functions(text, b, limit, ctx)


def longcat_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    if b < limit and text[b] in "{[":
        return json_body(text, b, limit, bound, ctx)
    return glm45.parse_body(text, b, limit, ctx, glm45.LONGCAT, "longcat")


_ARROW_HEAD = re.compile(r'\{[ \t\r\n]*tool[ \t]*=>[ \t]*"([^"\n]{1,200})"[ \t]*(,[ \t\r\n]*args[ \t]*=>[ \t]*)?')
_FLAG = re.compile(r"--([A-Za-z_][\w.-]{0,100})[ \t]+")
_CLOSE = re.compile(r"[ \t\r\n]*\}")


def _flag_value(text: str, k: int, limit: int) -> tuple[str, int] | None:
    """A `--key` value: a JSON string, or the rest of its line."""
    if text[k] != '"':
        nl = text.find("\n", k, limit)
        e = limit if nl == -1 else nl
        return text[k:e].strip(), e
    i = k + 1
    while i < limit and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    if i >= limit:
        return None
    try:
        value = json.loads(text[k:i + 1])
    except ValueError:
        return None
    return value, i + 1


def _flags(text: str, k: int, limit: int) -> tuple[dict[str, str], int] | Failed:
    """`{--path "a", --top_k 20}` one a line, up to the closing brace."""
    args: dict[str, str] = {}
    i = skip_ws(text, k, limit)
    while i < limit and text[i] != "}":
        m = _FLAG.match(text, i)
        got = None if m is None or m.end() >= limit else _flag_value(text, m.end(), limit)
        if m is None or got is None:
            return Failed("invalid_json", "not a --key value argument", i)
        args[m.group(1)], i = got
        i = skip_ws(text, i + (i < limit and text[i] == ","), limit)
    if i >= limit:
        return Failed("truncated", "the text ends inside the arguments", i)
    return args, i + 1


def _json_object_at(text: str, b: int, limit: int) -> bool:
    """A JSON object opens at `b`: `{` and then, past whitespace, a quoted key."""
    if b >= limit or text[b] != "{":
        return False
    k = skip_ws(text, b + 1, limit)
    return k < limit and text[k] == '"'


def arrow_body(text: str, b: int, limit: int, bound: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """MiniMax-M2's `{tool => "name", args => {--key "value"}}` (or JSON arguments); a JSON call object in the
    block (`{"tool": "name", "args": {...}}`) is read as JSON calls are."""
    m = _ARROW_HEAD.match(text, b, limit)
    if m is None:
        if _json_object_at(text, b, limit):
            return json_body(text, b, limit, bound, ctx)
        return Failed("invalid_json", "not a tool => call", b)
    call = RawCall(name=m.group(1))
    i = m.end()
    if m.group(2) is not None:
        if i >= limit or text[i] != "{":
            return Failed("invalid_json", "no arguments after args =>", i)
        j = skip_ws(text, i + 1, limit)
        if j < limit and text[j] in '"}':
            got = decode_at(text, i, limit, budget=ctx.budget)
            if isinstance(got, Failed):
                return got
            call.arguments, i = got.value, got.end
        else:
            flags = _flags(text, i + 1, limit)
            if isinstance(flags, Failed):
                return flags
            (call.arguments, i), call.text_args = flags, True
    else:
        call.arguments = {}
    c = _CLOSE.match(text, i, limit)
    if c is None:
        return Failed("truncated" if skip_ws(text, i, limit) >= len(text) else "invalid_json", "no closing }", i)
    return [call], c.end()


@dataclass(frozen=True)
class Wrapper:
    family: str
    open: str
    close: str | None   # None: the block runs to the end of its body
    body: Body
    xml_args: bool = False  # open-ended argument lists: cut off by the end of the text is truncated
    lead: str | None = None  # a literal that must follow the opening marker (after whitespace)
    ends: re.Pattern[str] | None = None  # what a whole XML-style body ends with (see `common.close_past_values`)
    lost: EndLost | None = None  # how a body reads whose call lacks its end tag (see `common.close_past_values`)
    trail: str | None = None  # a closer the format does not need but models write after the body (no `close`)


WRAPPERS: tuple[Wrapper, ...] = (
    Wrapper("minimax", "<tool_calls>", "</tool_calls>", json_lines_body),
    Wrapper("granite", "<|tool_call|>", None, json_body, trail="<|/tool_call|>"),
    Wrapper("granite_20b_fc", "<function_call>", None, json_body, trail="</function_call>"),
    Wrapper("internlm2", "<|action_start|><|plugin|>", "<|action_end|>", json_body),
    Wrapper("phi4_mini", "functools", None, json_body),
    Wrapper("gigachat3", "<|function_call|>", None, json_body),
    Wrapper("gigachat3", "<|message_sep|>", None, json_body, lead="function call<|role_sep|>"),
    Wrapper("apertus", "<|tools_prefix|>", "<|tools_suffix|>", name_args_body),
    Wrapper("lmstudio", "[TOOL_REQUEST]", "[END_TOOL_REQUEST]", json_body),
    Wrapper("minimax_m2", "[TOOL_CALL]", "[/TOOL_CALL]", arrow_body),
    Wrapper("longcat", "<longcat_tool_call>", "</longcat_tool_call>", longcat_body, xml_args=True,
            ends=ends_with(re.escape(glm45.LONGCAT.value_end))),
    Wrapper("seed_oss", "<seed:tool_call>", "</seed:tool_call>", qwen3_body, xml_args=True, ends=qwen3_coder.ENDS,
            lost=qwen3_coder.LOST),
    Wrapper("llama4_pythonic", "<|python_start|>", "<|python_end|>", llama4_body),
    Wrapper("hermes", "<tools>", "</tools>", json_body),
    Wrapper("olmo3", "<function_calls>", "</function_calls>", pythonic_body),
    Wrapper("nemotron_json", "<TOOLCALL>", "</TOOLCALL>", nemotron_body),
    Wrapper("nemotron_json", "<toolcall>", "</toolcall>", nemotron_body),
)
_BY_OPEN = {w.open: w for w in WRAPPERS}
START_MARKERS = tuple(w.open for w in WRAPPERS)

# Hunyuan (hy_v3): <tool_calls><tool_call>name<tool_sep><arg_key>k</arg_key><arg_value>v</arg_value></tool_call>
_HY_CALL = re.compile(re.escape("<tool_call>"))


def _hy_call(text: str, mb: re.Match[str], stop: int, ctx: Ctx) -> tuple[RawCall, int]:
    n = len(text)
    got = glm45.parse_body(text, skip_ws(text, mb.end(), stop), stop, ctx, family="hy_v3")
    if isinstance(got, Failed):
        if got.kind == "truncated" or stop >= n:
            return section.truncated_call(None, "hy_v3", got.detail), n
        return RawCall(name=None, family="hy_v3", failure=issue(got.kind, got.detail)), stop
    calls, i = got
    if stop >= n and calls[0].text_args:
        return section.truncated_call(calls[0].name, "hy_v3", "the text ends before </tool_call>"), n
    return calls[0], i


HY_SPEC = section.SectionSpec("hy_v3", re.compile(re.escape("<tool_calls>")), re.compile(re.escape("</tool_calls>")),
                              _HY_CALL, re.compile(re.escape("</tool_call>")), _hy_call, begin_name="<tool_calls>",
                              end_name="</tool_calls>", call_end_name="</tool_call>", bare_call_ok=False,
                              value_end=glm45.ENDS)


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    w = next((w for w in WRAPPERS if text.startswith(w.open, p)), None)
    if w is None:
        return None
    n = len(text)
    body = p + len(w.open)
    if w.lead is not None:
        k = skip_ws(text, body)
        if not text.startswith(w.lead, k):
            return None
        body = k + len(w.lead)
    if w.open == "<tool_calls>" and text.startswith("<tool_call>", skip_ws(text, body)):
        return section.parse(HY_SPEC, text, p, ctx)
    if w.open == invoke.SEED_BEGIN and invoke.SEED_FUNCTION.match(text, skip_ws(text, body)):
        return section.parse(invoke.SEED, text, p, ctx)
    if w.open == invoke.PLAIN_V32_BEGIN and invoke.starts_invoke(text, skip_ws(text, body)):
        return section.parse(invoke.PLAIN_V32, text, p, ctx)
    block = open_block(text, p, body, ctx, w.open, w.close, w.family)
    if not isinstance(block, Block):
        return block
    b, limit, bound, close = block.start, block.limit, block.bound, block.close
    got = w.body(text, b, limit, bound, ctx)
    if w.ends is not None and w.close is not None:
        got, close = close_past_values(text, ctx, lambda lim: w.body(text, b, lim, bound, ctx), got, close, w.close,
                                       w.ends, bound, w.lost)
    if isinstance(got, Failed) and got.kind != "truncated" and got.end <= b:
        return None  # the marker is followed by something else: not a call
    if isinstance(got, Failed):
        if got.kind == "truncated":
            return fail_segment(p, n, w.family, "truncated", got.detail)
        if close == -1:
            return None  # an opening marker followed by something else: not a call
        return fail_segment(p, close + len(w.close or ""), w.family, got.kind, got.detail)
    calls, i = got
    for c in calls:
        c.family = w.family
    first = calls[0]
    if w.close is None:
        end, junk = _past_trail(text, i, w.trail), ""
    else:
        if w.xml_args and first.text_args and close == -1 and skip_ws(text, i) >= n:
            return fail_segment(p, n, w.family, "truncated", f"the text ends before {w.close}; more arguments may "
                                "follow", first.name)
        end, junk = finish_block(text, i, close, len(w.close), first)
    return Parsed(end, [Segment(p, end, "calls", w.family, calls, text=junk)])


def _past_trail(text: str, i: int, trail: str | None) -> int:
    """Where a close-less block ends: past the optional closer that follows its body (whitespace between)."""
    if trail is None:
        return i
    k = skip_ws(text, i)
    return k + len(trail) if text.startswith(trail, k) else i


def _kinds() -> tuple[Kind, ...]:
    kinds = []
    for i, w in enumerate(WRAPPERS):
        nodes: tuple[Node, ...] = (Lit(w.open),) if w.lead is None else (Lit(w.open), Ws(8), Lit(w.lead))
        kinds.append(Kind(f"wrapped_{i}", nodes, parse))
    return tuple(kinds)


FORMAT = Format(
    tuple(dict.fromkeys((*(w.family for w in WRAPPERS), "hy_v3"))),
    _kinds(),
    (*aliases("minimax", "minimax", "minimax_text", "hunyuan_a13b", "jamba"), *aliases("hy_v3", "hy_v3", "hunyuan"),
     *aliases("granite", "granite", "granite3"), *aliases("granite_20b_fc", "granite_20b_fc"),
     *aliases("internlm2", "internlm", "internlm2", "interns1"), *aliases("phi4_mini", "phi4_mini", "phi4_mini_json"),
     *aliases("gigachat3", "gigachat3", "gigachat"), *aliases("apertus", "apertus"),
     *aliases("lmstudio", "lmstudio", "lm_studio"), *aliases("longcat", "longcat"),
     *aliases("seed_oss", "seed_oss", "seed"), *aliases("llama4_pythonic", "llama4_pythonic", "llama4"),
     *aliases("olmo3", "olmo3", "olmo"),
     *aliases("nemotron_json", "nemotron_json", "llama_nemotron_json", "nemotron_nano_v2", "nemotron_deci")),
    (Template("longcat", ("<longcat_tool_call>",), rank=8), Template("seed_oss", ("<seed:tool_call>",), rank=8),
     Template("hy_v3", ("<tool_calls>", "<tool_sep>"), rank=29), Template("apertus", ("<|tools_prefix|>",), rank=20),
     Template("internlm2", ("<|action_start|>", "<|plugin|>"), rank=20),
     Template("gigachat3", ("<|role_sep|>", "function call"), rank=20),
     Template("gigachat3", ("<|function_call|>",), rank=21), Template("granite", ("<|tool_call|>",), rank=20),
     Template("granite_20b_fc", ("<function_call>",), rank=20), Template("phi4_mini", ("functools",), rank=20),
     Template("llama4_pythonic", ("<|python_start|>",), rank=70), Template("olmo3", ("<function_calls>",), rank=75),
     Template("minimax", ("<tool_calls>",), rank=85), Template("lmstudio", ("[TOOL_REQUEST]",), rank=20),
     Template("nemotron_json", ("<TOOLCALL>",), rank=20), Template("nemotron_json", ("<toolcall>",), rank=21)))
