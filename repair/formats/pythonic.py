"""Pythonic calls: [f(a=1), g(b="x")], bare or inside LFM2's <|tool_call_start|>...<|tool_call_end|>.

Parsed with `ast` (never evaluated); values must be literals (JSON's true/false/null are accepted).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from repair.formats.common import Block, Ctx, fail_segment, finish_block, issue, open_block, skip_ws
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit, Name, Ws
from repair.salvage import Failed
from repair.types import Parsed, RawCall, Segment

FAMILY = "pythonic"
OPEN = "<|tool_call_start|>"
CLOSE = "<|tool_call_end|>"
START_MARKERS = (OPEN,)
_INTERESTING = re.compile(r"[\[\](){}'\"#]")
_STRING = re.compile(
    r"'''[\s\S]*?(?:'''|\Z)|\"\"\"[\s\S]*?(?:\"\"\"|\Z)"
    r"|'(?:[^'\\\n]|\\[\s\S])*\\?'?|\"(?:[^\"\\\n]|\\[\s\S])*\\?\"?"
)
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_MAX_DEPTH = 64
_MAX_TOKENS = 8192



def extent(text: str, i: int, limit: int) -> int | None:
    """End of the bracketed Python expression opening at text[i]; None when it does not close before `limit`,
    -1 when it is too deep or too long to be a call."""
    stack: list[str] = []
    pos = i
    for _ in range(_MAX_TOKENS):
        m = _INTERESTING.search(text, pos, limit)
        if m is None:
            return None
        c = m.group()
        if c in "'\"":
            sm = _STRING.match(text, m.start(), limit)
            if sm is None:  # pragma: no cover - the pattern always matches a quote
                return None
            pos = sm.end()
            if pos >= limit and not sm.group().endswith(c):
                return None
            continue
        if c == "#":
            nl = text.find("\n", m.end(), limit)
            if nl == -1:
                return None
            pos = nl + 1
            continue
        pos = m.end()
        if c in _CLOSERS:
            stack.append(_CLOSERS[c])
            if len(stack) > _MAX_DEPTH:
                return -1
        else:
            if not stack or stack[-1] != c:
                return -1
            stack.pop()
            if not stack:
                return pos
    return -1


class _JSONLiterals(ast.NodeTransformer):
    _values = {"true": True, "false": False, "null": None}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self._values:
            return ast.copy_location(ast.Constant(self._values[node.id]), node)
        return node


def _dotted(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        parent = _dotted(func.value)
        return f"{parent}.{func.attr}" if parent else None
    return None


def _literal(node: ast.expr) -> Any:
    value = ast.literal_eval(_JSONLiterals().visit(node))
    json.dumps(value, allow_nan=False)
    return value


def _call(node: ast.expr, family: str) -> RawCall | None:
    if not isinstance(node, ast.Call):
        return None
    name = _dotted(node.func)
    if name is None:
        return None
    call = RawCall(name=name, family=family)
    try:
        if node.args:
            if len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Dict):
                call.arguments = _literal(node.args[0])
                return call
            call.failure = issue("invalid_json", "positional arguments")
            return call
        args: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                call.failure = issue("invalid_json", "**kwargs in a call")
                return call
            args[kw.arg] = _literal(kw.value)
        call.arguments = args
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        call.failure = issue("invalid_json", "argument values are not literals")
    return call


def parse_calls(src: str, family: str) -> list[RawCall] | Failed:
    """`[f(a=1), ...]`, `(f(a=1), ...)` or a single `f(a=1)`."""
    try:
        tree = ast.parse(src.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Failed("invalid_json", "not a Python call expression", 0)
    body = tree.body
    elts = body.elts if isinstance(body, (ast.List, ast.Tuple)) else [body]
    if not elts:
        return Failed("invalid_json", "empty call list", 0)
    calls = []
    for e in elts:
        c = _call(e, family)
        if c is None:
            return Failed("invalid_json", "not a Python call expression", 0)
        calls.append(c)
    return calls


_PY_HEAD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}\s*\(")


def parse_lines(text: str, b: int, limit: int, ctx: Ctx) -> tuple[list[RawCall], int] | Failed:
    """`[f(a=1), g()]`, or bare calls one after another (newlines, commas or semicolons between them)."""
    n = len(text)
    if b < limit and text[b] == "[":
        e = extent(text, b, limit)
        if e is None:
            if limit >= n:
                return Failed("truncated", "the text ends inside the call list", n)
            return Failed("invalid_json", "the call list does not close", limit)
        if e == -1:
            return Failed("invalid_json", "not a Python call list", b)
        got = parse_calls(text[b:e], FAMILY)
        return got if isinstance(got, Failed) else (got, e)
    calls: list[RawCall] = []
    i = b
    while ctx.room(len(calls)):
        m = _PY_HEAD.match(text, i, limit)
        if m is None:
            break
        e = extent(text, m.end() - 1, limit)
        if e is None:
            if limit >= n:
                return Failed("truncated", "the text ends inside a call", n)
            return Failed("invalid_json", "a call does not close", limit)
        if e == -1:
            return Failed("invalid_json", "not a Python call", i)
        got = parse_calls(text[i:e], FAMILY)
        if isinstance(got, Failed):
            return got
        calls.extend(got)
        i = skip_ws(text, e, limit)
        if i < limit and text[i] in ",;":
            i = skip_ws(text, i + 1, limit)
    if not calls:
        return Failed("invalid_json", "no Python call", b)
    return calls, i


_TOOL_CODE_FENCE = re.compile(r"```tool_code[ \t]*\r?\n?")
_TOOL_CODE_ASSIGN = re.compile(r"tool_code[ \t]*=[ \t]*")
_PRINT_TOOL_CODE = re.compile(r"[ \t]*\r?\n[ \t]*print\(tool_code\)")


def parse_tool_code(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """Gemma's ```tool_code fence of Python calls (a bracketed list of them too), and its unfenced
    `tool_code = f(...)` (+ `print(tool_code)`)."""
    n = len(text)
    fm = _TOOL_CODE_FENCE.match(text, p)
    if fm is not None:
        b = skip_ws(text, fm.end())
        close = ctx.find("```", b)
        limit = close if close != -1 else n
        got = parse_lines(text, b, limit, ctx)
        if isinstance(got, Failed):
            if got.kind == "truncated":
                return fail_segment(p, n, FAMILY, "truncated", got.detail)
            return None
        calls, i = got
        if skip_ws(text, i, limit) < limit:
            return None  # more than calls in the fence: code, not a call
        end = close + 3 if close != -1 else n
        return Parsed(end, [Segment(p, end, "calls", FAMILY, calls)])
    am = _TOOL_CODE_ASSIGN.match(text, p)
    if am is None:
        return None
    paren = text.find("(", am.end(), min(n, am.end() + 200))
    e = extent(text, paren, n) if paren != -1 else -1
    if e is None:
        return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the call")
    if e == -1:
        return None
    assigned = parse_calls(text[am.end():e], FAMILY)
    if isinstance(assigned, Failed):
        return fail_segment(p, e, FAMILY, assigned.kind, assigned.detail)
    pm = _PRINT_TOOL_CODE.match(text, e)
    end = pm.end() if pm is not None else e
    return Parsed(end, [Segment(p, end, "calls", FAMILY, assigned)])


def parse_wrapped(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    block = open_block(text, p, p + len(OPEN), ctx, OPEN, CLOSE, FAMILY)
    if not isinstance(block, Block):
        return block
    b, limit, close = block.start, block.limit, block.close
    notes: list[tuple[str, str]] = []
    if text[b] == "[":
        e = extent(text, b, limit)
        if e == -1:
            return fail_segment(p, close + len(CLOSE) if close != -1 else n, FAMILY, "invalid_json",
                                "not a Python call list")
        if e is None:
            if limit >= n:
                return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the call list")
            src = text[b:limit].rstrip() + "]"
            notes.append(("json_syntax", "missing ']'"))
            e = limit
        else:
            src = text[b:e]
    else:
        paren = text.find("(", b, min(limit, b + 200))
        e = extent(text, paren, limit) if paren != -1 else None
        if e == -1:
            return fail_segment(p, close + len(CLOSE) if close != -1 else n, FAMILY, "invalid_json",
                                "not a Python call list")
        if e is None:
            if limit >= n and paren != -1:
                return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the call")
            if close == -1:
                return None
            return fail_segment(p, close + len(CLOSE), FAMILY, "invalid_json", "not a Python call list")
        src = "[" + text[b:e] + "]"
        notes.append(("json_syntax", "missing list brackets"))
    calls = parse_calls(src, FAMILY)
    if isinstance(calls, Failed):
        end = close + len(CLOSE) if close != -1 else e
        return fail_segment(p, end, FAMILY, calls.kind, calls.detail)
    for kind, detail in notes:
        calls[0].repairs.append(issue(kind, detail))
    end, junk = finish_block(text, e, close, len(CLOSE), calls[0])
    return Parsed(end, [Segment(p, end, "calls", FAMILY, calls, text=junk)])


def parse_bare(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """`[name(` at a line start, where name is a declared tool."""
    n = len(text)
    e = extent(text, p, n)
    if e is None:
        return fail_segment(p, n, FAMILY, "truncated", "the text ends inside the call list")
    if e == -1:
        return fail_segment(p, n, FAMILY, "invalid_json", "not a Python call list")
    calls = parse_calls(text[p:e], FAMILY)
    if isinstance(calls, Failed):
        return fail_segment(p, e, FAMILY, calls.kind, calls.detail)
    return Parsed(e, [Segment(p, e, "calls", FAMILY, calls)])


FORMAT = Format(
    ("pythonic",),
    (Kind("pythonic_wrapped", (Lit(OPEN),), parse_wrapped),
     Kind("pythonic_bare", (Lit("["), Name(64, ("(",))), parse_bare, line_start=True, generic=True),
     Kind("tool_code_fence", (Lit("```tool_code"), Ws(16), Name(64, ("(",))), parse_tool_code, line_start=True,
          generic=True),
     Kind("tool_code_fence_list", (Lit("```tool_code"), Ws(16), Lit("["), Name(64, ("(",))), parse_tool_code,
          line_start=True, generic=True),
     Kind("tool_code_assign", (Lit("tool_code"), Ws(4), Lit("="), Ws(4), Name(64, ("(",))), parse_tool_code,
          line_start=True, generic=True)),
    aliases(FAMILY, "pythonic", "lfm2"),
    (Template(FAMILY, (OPEN,), rank=40), Template(FAMILY, ("<|tool_list_start|>",), rank=41)))
