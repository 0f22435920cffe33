"""A call written as XML whose tag is the tool's name and whose children are its parameters, as models trained on
Cline's and Roo Code's text protocol write it when a request declares native tools:

    <read_file>
    <path>src/main.py</path>
    </read_file>

A call only where everything says so: the tag begins its line (after prose, on a line of its own) outside code, it
is exactly a declared tool's name, every child is one of that tool's parameters, written once, with nothing but
white space between them, and the tool's end tag closes it (the text ending first: `truncated`). Anything else
(a tag naming no tool, HTML, a tag with prose or unknown children inside, the syntax shown in a fence or inline
code) is text. Values are text typed from the schema; the framing newline of a value on lines of its own
(`<content>\\n...\\n</content>`) is removed, the rest kept byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from repair.formats.common import Ctx, fail_segment, value_end
from repair.formats.spec import Format
from repair.markers import Kind, Lit, Name
from repair.types import Parsed, RawCall, Segment, json_object

FAMILY = "tool_tags"
_TAG = re.compile(r"<([A-Za-z0-9_.\-]{1,64})>")
_CHILD = re.compile(r"<([A-Za-z_][A-Za-z0-9_.\-]{0,127})>")
_WS = re.compile(r"[ \t\r\n]*")


def _params(ctx: Ctx, name: str) -> dict[str, Any]:
    schema = ctx.index.get(name).parameters
    return json_object(schema.get("properties"), {}) if isinstance(schema, dict) else {}


def _unframed(value: str) -> str:
    """A value without the newlines framing it on lines of its own (`<content>\\nx\\n</content>` is "x")."""
    if value.startswith("\n"):
        value = value[1:]
    elif value.startswith("\r\n"):
        value = value[2:]
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value


class _Cut(Exception):
    """The text ends inside the call."""


def _children(text: str, k: int, stop: int, props: dict[str, Any], closer: str) -> tuple[dict[str, str], int] | None:
    """The parameters from `k` up to `stop` (the tool's end tag, or the text's end): the values and where they
    end; None when something other than a declared parameter stands there. Raises _Cut when the text ends inside
    one."""
    args: dict[str, str] = {}
    n = len(text)
    while True:
        k = _WS.match(text, k, stop).end()  # type: ignore[union-attr]
        if k >= stop:
            return args, k
        cm = _CHILD.match(text, k, stop)
        if cm is None:
            if stop >= n and _markup_start(text[k:], closer):
                raise _Cut
            return None
        key = cm.group(1)
        if key not in props or key in args:
            return None
        end_tag = "</" + key + ">"
        follows = (_CHILD, closer)
        pe, pe_end = value_end(text, end_tag, cm.end(), stop, follows, stop, last=False)
        if pe == -1:
            if stop >= n:
                raise _Cut
            return None
        args[key] = _unframed(text[cm.end():pe])
        k = pe_end


def _markup_start(tail: str, closer: str) -> bool:
    """Whether the text's last characters begin the tool's end tag or a child's tag (it was cut there)."""
    return closer.startswith(tail) or (len(tail) <= 129 and _CHILD.fullmatch(tail + ">") is not None)


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """The call at `p` (the candidate kind placed it at a line start, outside a fence: `Kind.unfenced`)."""
    m = _TAG.match(text, p)
    if m is None or m.group(1) not in ctx.index.tools:
        return None
    name = m.group(1)
    closer = "</" + name + ">"
    close_at = ctx.find(closer, m.end())
    stop = close_at if close_at != -1 else len(text)
    try:
        got = _children(text, m.end(), stop, _params(ctx, name), closer)
    except _Cut:
        return fail_segment(p, len(text), FAMILY, "truncated", f"the text ends before {closer}", name)
    if got is None:
        return None
    if close_at == -1:  # every parameter whole, the end tag not yet written
        return fail_segment(p, len(text), FAMILY, "truncated", f"the text ends before {closer}", name)
    call = RawCall(name=name, arguments=got[0], family=FAMILY, text_args=True)
    end = close_at + len(closer)
    return Parsed(end, [Segment(p, end, "calls", FAMILY, [call])])


def _line_may_call(text: str, p: int, end: int) -> bool:
    """The tag's line holds nothing after it but a child's tag (`<a><b>x</b></a>`): a stream holds the candidate
    only to its line's end (in a fenced block the kind is not a candidate: `Kind.unfenced`)."""
    m = _TAG.match(text, p, end)
    if m is None:
        return False
    rest = text[m.end():end].strip()
    return not rest or rest.startswith("<")


FORMAT = Format(
    (FAMILY,), (Kind(FAMILY, (Lit("<"), Name(64, (">",))), parse, line_start=True, generic=True,
                     line_check=_line_may_call, unfenced=True),))
