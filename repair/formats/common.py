"""Helpers shared by the wire-format parsers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repair.fences import Fences
from repair.index import ToolIndex
from repair.salvage import Budget, Decoded, Failed, decode_at
from repair.types import Parsed, RawCall, RepairIssue, Segment, json_object

_MISSING = object()
ARG_KEYS = ("arguments", "parameters", "args", "input", "params")


class Next:
    """Next occurrence of a literal or a compiled pattern at or after a position; searches are cached so that a
    parser walking forward through a region pays for each occurrence once."""

    def __init__(self, text: str, token: str | re.Pattern[str], limit: int | None = None) -> None:
        self.text = text
        self.token = token
        self.limit = len(text) if limit is None else limit
        self._from = -1
        self._at = -1
        self._len = 0

    def at(self, pos: int) -> int:
        """Start of the next occurrence at or after `pos`, or -1."""
        if self._from != -1 and self._from <= pos and (self._at == -1 or self._at >= pos):
            return self._at
        self._from = pos
        if isinstance(self.token, str):
            self._at = self.text.find(self.token, pos, self.limit)
            self._len = len(self.token)
        else:
            m = self.token.search(self.text, pos, self.limit)
            self._at = m.start() if m else -1
            self._len = (m.end() - m.start()) if m else 0
        return self._at

    def end(self) -> int:
        """End of the occurrence last returned by at()."""
        return self._at + self._len


MAX_CALLS = 64  # call attempts parsed in one message (a stream starts no more either)


@dataclass
class Limits:
    """Bounds on the work for one message: candidates examined and call attempts parsed. Past them the rest of
    the text is left as it is (no real output comes near them; adversarial text stays fast)."""

    handlers: int = 512
    calls: int = MAX_CALLS


@dataclass
class Ctx:
    """What the parsers of one text share: the declared tools, the json-repair budget, the configured family,
    the candidate finder (for nested blocks) and cached forward searches over `text`."""

    index: ToolIndex
    budget: Budget
    prefer: str | None  # the configured family, None for auto
    text: str
    finder: Any
    inner_finder: Any = None  # the finder for text inside <think> (native markup only)
    limits: Limits = field(default_factory=Limits)
    fences: Fences = field(default_factory=Fences)  # the text's fenced blocks, read as far as candidates asked
    _next: dict[Any, Next] = field(default_factory=dict)

    def room(self, parsed_so_far: int) -> bool:
        """Whether a handler may parse one more call."""
        return parsed_so_far < self.limits.calls

    def find(self, token: str | re.Pattern[str], pos: int) -> int:
        """Start of the next occurrence of `token` at or after `pos` in the text, or -1."""
        nx = self._next.get(token)
        if nx is None:
            nx = self._next[token] = Next(self.text, token)
        return nx.at(pos)

    def find_end(self, token: re.Pattern[str], pos: int) -> tuple[int, int]:
        """(start, end) of the next match of a pattern at or after `pos`, or (-1, -1)."""
        at = self.find(token, pos)
        return (at, self._next[token].end()) if at != -1 else (-1, -1)

    def sub(self, text: str) -> Ctx:
        """A context for the text inside a <think> block."""
        return Ctx(self.index, self.budget, self.prefer, text, self.inner_finder, self.inner_finder, self.limits)


def issue(kind: str, detail: str = "") -> RepairIssue:
    return RepairIssue(kind, detail)


_WS_RUN = re.compile(r"[ \t\r\n]*")


def skip_ws(text: str, i: int, limit: int | None = None) -> int:
    if 0 <= i < len(text) and text[i] not in " \t\r\n":  # the usual case: nothing to skip, no regex call
        return i
    m = _WS_RUN.match(text, i, len(text) if limit is None else limit)
    return m.end() if m else i


def has_note(call: RawCall, kind: str) -> bool:
    return any(r.kind == kind for r in call.repairs)


def stray_prose(call: RawCall, stray: str) -> str:
    """What a call's markup holds after its arguments: prose (kept as content when the call goes out, as a block's
    prose after its call is), or "" for stray closers and separators (a json_syntax note on the call)."""
    stray = stray.strip()
    if stray and not stray.strip("}]),; \t\r\n"):
        call.repairs.append(issue("json_syntax", "stray characters after the arguments"))
        return ""
    return stray


def finish_block(text: str, i: int, close_at: int, close_len: int, call: RawCall, *,
                 mangled: re.Pattern[str] | None = None) -> tuple[int, str]:
    """Where a block whose content ended at `i` ends, given its closing tag at `close_at` (-1: not found).

    Records "closing_tag" (missing or malformed) or "truncated" (the text ends first) on `call`. Returns the end
    and any prose found inside the block after the call (kept as content when the call is promoted).
    """
    n = len(text)
    if close_at != -1:
        j = skip_ws(text, i, close_at)
        junk = text[j:close_at].strip()
        if junk and not junk.strip("}]),; \t\r\n"):
            call.repairs.append(issue("json_syntax", "stray characters before the closing tag"))
            junk = ""
        return _past_repeats(text, close_at, close_at + close_len, call), junk
    j = skip_ws(text, i)
    if mangled is not None:
        m = mangled.match(text, j)
        if m is not None and m.end() > j:
            call.repairs.append(issue("closing_tag", f"malformed closing tag {m.group()!r}"))
            return m.end(), ""
    if j >= n:
        if not has_note(call, "truncated"):
            call.repairs.append(issue("truncated", "the text ends before the closing tag"))
        return n, ""
    call.repairs.append(issue("closing_tag", "closing tag missing"))
    return i, ""


def left_over_opener(text: str, end: int, opener: str, calls: list[RawCall]) -> int:
    """Where calls that ended at `end` at their own end tag (a closed `<tool_call>...</tool_call>` block, whatever
    body it holds, or Qwen3-Coder's bare `<function=...>...</function>`) end: the text's end when all that follows
    is `opener` alone (whitespace around it), which is markup left over rather than a call cut off (nothing of one
    follows it), noted on the first call (`opening_tag`) so that it goes with the calls' markup, or stays in the
    content with their text when they are not made; else `end`. Calls read with a failure are no complete calls: the
    opener after them, like one followed by anything of a call or one after no call, is read on its own (a cut call).
    """
    if not calls or any(c.failure for c in calls):
        return end
    k = skip_ws(text, end)
    if not text.startswith(opener, k) or skip_ws(text, k + len(opener)) < len(text):
        return end
    calls[0].repairs.append(issue("opening_tag", f"{opener} left after the calls, nothing after it"))
    return len(text)


def _past_repeats(text: str, close_at: int, end: int, call: RawCall) -> int:
    """Where a block closed by the tag at `close_at` (ending at `end`) ends: past the same closing tag written again
    right after it, whitespace between (GLM-5.2's `</tool_call></tool_call>`), which is the call's markup, not
    content (`closing_tag`). Only an end tag (`</...>`) repeats so: a fence's backticks may open the next fence."""
    closer = text[close_at:end]
    if not (closer.startswith("</") and closer.endswith(">")):
        return end
    k = skip_ws(text, end)
    while text.startswith(closer, k):
        end = k + len(closer)
        k = skip_ws(text, end)
    if end != close_at + len(closer):
        call.repairs.append(issue("closing_tag", f"closing tag {closer} written twice"))
    return end


def fail_segment(start: int, end: int, family: str, kind: str, detail: str, name: str | None = None) -> Parsed:
    call = RawCall(name=name, family=family, failure=issue(kind, detail))
    return Parsed(end, [Segment(start, end, "calls", family, [call])])


@dataclass(frozen=True)
class Block:
    """The body of a block opened by a marker: it starts at `start` (its first non-space) and runs to `limit`, the
    block's close marker (`close`, -1 when missing) or else `bound`, the next opening marker or the text's end."""

    start: int
    limit: int
    bound: int
    close: int


def open_block(text: str, p: int, body: int, ctx: Ctx, opener: str, closer: str | None,
               family: str) -> Block | Parsed | None:
    """Locate the body of the block whose opening marker starts at `p` (its body at `body`). An empty block is
    an `invalid_json` failure when it closes, `truncated` when the text ends right after the opener (and the
    format has a closer), else not a call (None)."""
    n = len(text)
    nxt = ctx.find(opener, body)
    bound = nxt if nxt != -1 else n
    close = ctx.find(closer, body) if closer else -1
    if close != -1 and close >= bound:
        close = -1
    limit = close if close != -1 else bound
    start = skip_ws(text, body, limit)
    if start < limit:
        return Block(start, limit, bound, close)
    if close != -1:
        return fail_segment(p, close + len(closer or ""), family, "invalid_json", "empty tool call block")
    if limit >= n and closer:
        return fail_segment(p, n, family, "truncated", "the text ends right after the opening marker")
    return None


def add_notes(call: RawCall, notes: list[tuple[str, str]]) -> None:
    for kind, detail in notes:
        call.repairs.append(issue(kind, detail))


DEFINITION = "a tool's definition, not a call"  # what bare JSON and fences take for prose (see json_block)
DATA = "data naming a tool, not a call"  # (`RawCall.data_like`): as prose, the whole value (see json_block)


def _definition(src: dict[str, Any]) -> bool:
    """Whether an object naming a tool, without "arguments", is the tool's definition rather than a call: it
    carries a description or an input schema, or its "parameters" are a JSON Schema (an object type with its
    properties). A model that lists or explains its tools makes no call."""
    params = src.get("parameters")
    return "description" in src or "input_schema" in src or (
        isinstance(params, dict) and params.get("type") == "object" and isinstance(params.get("properties"), dict))


_CALL_KEYS = frozenset({"name", "function", "tool", "tool_name", "id", "type", "index", "call_id"})


def _one_call(item: Any, family: str, params_native: bool) -> RawCall | None:
    if not isinstance(item, dict):
        return None
    src = item
    name: Any = None
    fn = item.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        name, src = fn["name"], fn
    else:
        for key in ("name", "function", "tool", "tool_name"):
            if isinstance(item.get(key), str):
                name = item[key]
                break
    if not isinstance(name, str) or ("arguments" not in src and _definition(src)):
        return None
    call = RawCall(name=name, family=family)
    args: Any = _MISSING
    for key in ARG_KEYS:
        if key in src:
            args = src[key]
            if key != "arguments" and not (key == "parameters" and params_native):
                call.repairs.append(issue("parameters_key", f'"{key}" used for "arguments"'))
            break
    # {"tool": "search", "reason": ...}: data naming a tool where nothing else says it is a call (a bare object, a
    # fence: see json_block); in a format's own markup, a call without arguments
    call.data_like = args is _MISSING and any(k not in _CALL_KEYS for k in src)
    call.arguments = None if args is _MISSING else args
    return call


def calls_from_json(value: Any, family: str, *, params_native: bool = False) -> list[RawCall] | None:
    """Decoded JSON in the shape of one call or a list of calls -> calls; None when it is not that shape."""
    if isinstance(value, dict) and "name" not in value:
        if isinstance(value.get("tool_calls"), list):
            value = value["tool_calls"]
        elif len(value) == 1 and isinstance(value.get("tool_call"), dict):  # llama.cpp's generic format, one call
            value = value["tool_call"]
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls = []
    for item in items:
        call = _one_call(item, family, params_native)
        if call is None:
            return None
        calls.append(call)
    return calls


def uses_params_key(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return any(isinstance(i, dict) and "parameters" in i and "arguments" not in i for i in items)


def decode_calls(text: str, pos: int, limit: int, family: str, ctx: Ctx, *, strict_limit: int | None = None,
                 reach: bool = False, params_native: bool = False) -> tuple[list[RawCall], int] | Failed:
    """One JSON value holding call objects at `pos`: the calls and where the value ended."""
    i = skip_ws(text, pos, limit)
    max_closers = 2 if i < limit and text[i] == "[" else 1
    got = decode_at(text, i, limit, strict_limit=strict_limit, reach=reach, max_closers=max_closers,
                    budget=ctx.budget)
    if isinstance(got, Failed):
        return got
    return finish_calls(got, family, params_native)


def finish_calls(got: Decoded, family: str, params_native: bool) -> tuple[list[RawCall], int] | Failed:
    calls = calls_from_json(got.value, family, params_native=params_native)
    if calls is None:
        items = got.value if isinstance(got.value, list) else [got.value]
        if items and all(isinstance(i, dict) and "arguments" not in i and _definition(
                i["function"] if isinstance(i.get("function"), dict) else i) for i in items):
            return Failed("invalid_json", DEFINITION, got.end)
        return Failed("invalid_json", "JSON that is not a tool call", got.end)
    truncated = any(k == "truncated" for k, _ in got.repairs)
    if truncated and any(c.arguments is None for c in calls):
        return Failed("truncated", "the text ends before the arguments", got.end)
    add_notes(calls[0], got.repairs)
    return calls, got.end


def unwrap_arguments(call: RawCall, ctx: Ctx) -> None:
    """{"arguments": {...}} written as the only parameter of a tool that declares no such parameter: the inner
    object is the arguments (XML-style formats whose model wrapped the JSON arguments in one parameter)."""
    args = call.arguments
    if not isinstance(args, dict) or len(args) != 1:
        return
    key, value = next(iter(args.items()))
    if key not in ARG_KEYS or not isinstance(call.name, str):
        return
    resolved = ctx.index.resolve(call.name)
    if resolved is None:
        return
    params = ctx.index.get(resolved).parameters or {}
    props = json_object(params.get("properties"), {})
    if key in props:
        return
    if isinstance(value, str):
        got = decode_at(value, 0, budget=ctx.budget)
        if isinstance(got, Failed) or value[got.end:].strip():
            return
        value = got.value
    if isinstance(value, dict):
        call.arguments = value
        call.repairs.append(issue("parameters_key", f'arguments wrapped in a parameter named "{key}"'))


def value_end(text: str, closer: str | re.Pattern[str], vs: int, bound: int,
              follows: tuple[str | re.Pattern[str], ...], limit: int, *, last: bool = True) -> tuple[int, int]:
    """(start, end) of the closing tag of an XML-style value starting at `vs`, or (-1, -1) when there is none
    before `bound` (the next parameter's opener or the call's end). A value may hold its own closing tag (a model
    writing an XML file, or editing a parser): the closer taken is the last one before `bound` that the call's
    markup can follow (after white space: one of `follows`, or `limit`, where the block ends); the first one when
    none is. With `last=False` the first closer the markup can follow is taken (where `bound` is far: tags that
    any XML value may hold too)."""
    first = (-1, -1)
    best = (-1, -1)
    at = vs
    n = len(text)
    while at < bound:
        if isinstance(closer, str):
            a = text.find(closer, at, bound)
            e = a + len(closer)
        else:
            m = closer.search(text, at, bound)
            a, e = (m.start(), m.end()) if m else (-1, -1)
        if a == -1:
            break
        if first[0] == -1:
            first = (a, e)
        j = skip_ws(text, e, n)
        if j >= limit or any(text.startswith(f, j) if isinstance(f, str) else f.match(text, j) for f in follows):
            best = (a, e)
            if not last:
                break
        at = e
    return best if best[0] != -1 else first


_STRING_DECODER = json.JSONDecoder()


def json_string(text: str, i: int, limit: int) -> tuple[str, int] | None:
    """A JSON string literal at text[i] (not past `limit`): its value and end; None when there is none."""
    if i >= limit or text[i] != '"':
        return None
    try:
        value, end = _STRING_DECODER.raw_decode(text[:limit], i)
    except ValueError:
        return None
    return (value, end) if isinstance(value, str) else None


def ends_with(*sources: str) -> re.Pattern[str]:
    """A pattern for `closer_after`: one of `sources` (regular expressions), then white space up to the end of the
    search window (`search(text, lo, at)` tells whether the text before `at` ends with one of them)."""
    return re.compile("(?:" + "|".join(sources) + r")[ \t\r\n]*\Z")


def closer_after(text: str, ctx: Ctx, closer: str | re.Pattern[str], ends: re.Pattern[str], start: int,
                 bound: int, *, or_bound: bool = False) -> tuple[int, int]:
    """(start, end) of the first `closer` at or after `start` and before `bound` that comes right after (past white
    space) what `ends` matches: the markup a whole call ends with; with `or_bound`, (bound, bound) when there is none
    and the text before `bound` ends so; (-1, -1) otherwise. Each stretch of the text between two closers is looked
    at once, however many closers a value holds."""
    lo = start
    while True:
        if isinstance(closer, str):
            at = ctx.find(closer, lo)
            end = at + len(closer)
        else:
            at, end = ctx.find_end(closer, lo)
        if at == -1 or at >= bound:
            return (bound, bound) if or_bound and ends.search(text, lo, bound) is not None else (-1, -1)
        if ends.search(text, lo, at) is not None:
            return at, end
        lo = max(end, at + 1)


BodyCalls = tuple[list[RawCall], int] | Failed  # calls read from a block's body and where they ended, or why not


def whole_body(got: BodyCalls, text: str, limit: int) -> bool:
    """Whether calls read up to `limit` came out whole: none failed or lacks a closing tag, and only white space
    is left before `limit`."""
    if isinstance(got, Failed):
        return False
    calls, i = got
    return skip_ws(text, i, limit) >= limit and not any(
        c.failure is not None or has_note(c, "closing_tag") for c in calls)


@dataclass(frozen=True)
class EndLost:
    """How a body whose values all closed but whose call lacks its end tag (Qwen3-Coder's `</function>`) reads:
    `values` matches the end of a value (see `ends_with`), `note` is the closing_tag detail a call gets when only
    its end tag is missing (see `close_past_values`)."""

    values: re.Pattern[str]
    note: str


def close_past_values(text: str, ctx: Ctx, parse: Callable[[int], BodyCalls], got: BodyCalls,
                      close: int, closer: str, ends: re.Pattern[str], bound: int,
                      lost: EndLost | None = None) -> tuple[BodyCalls, int]:
    """An XML-style body read up to its block's first `closer` (at `close`) that came out cut (a value, or the call,
    without its closing tag): the block's own closer in a value (a file or code that writes such tags). The block
    closes at the first later `closer` before `bound` (the next block's opener or the text's end) that comes right
    after the body's closing markup (`ends`), or, with none, runs to `bound` when the body's closing markup comes
    right before it (its closer missing: -1), when the body read that far (`parse(limit)`) comes out whole;
    otherwise, with `lost`, as `past_values_of_unended` finds; otherwise at `close`, as read. The body and where
    the block closes; the body is read again at most twice."""
    if close == -1 or whole_body(got, text, close):
        return got, close
    later, _ = closer_after(text, ctx, closer, ends, close + len(closer), bound, or_bound=True)
    if later != -1:
        again = parse(later)
        if whole_body(again, text, later):
            return again, (later if later < bound else -1)
    if lost is None or values_closed(got, text, close, lost.note):
        return got, close
    return past_values_of_unended(text, ctx, parse, got, close, closer, bound, lost)


def past_values_of_unended(text: str, ctx: Ctx, parse: Callable[[int], BodyCalls], got: BodyCalls, close: int,
                           closer: str, bound: int, lost: EndLost) -> tuple[BodyCalls, int]:
    """A body cut inside a value by the block's `closer` (at `close`) whose call also lacks its end tag: the block
    closes at the first later `closer` before `bound` that comes right after a value's end (`lost.values`) when the
    body read that far has every value closed (only the call's end tag missing), or runs to `bound` when the text
    before it ends so (the text's end: the call is `truncated`, more values may have followed, as without the tag
    in the value); otherwise at `close`, as read."""
    later, _ = closer_after(text, ctx, closer, lost.values, close + len(closer), bound, or_bound=True)
    if later == -1:
        return got, close
    again = parse(later)
    if isinstance(again, Failed):
        return (again, -1) if again.kind == "truncated" and later >= len(text) else (got, close)
    if not values_closed(again, text, later, lost.note):
        return got, close
    return again, (later if later < bound else -1)


def values_closed(got: BodyCalls, text: str, limit: int, note: str) -> bool:
    """Whether calls read up to `limit` came out whole but for their end tag (a closing_tag note `note`)."""
    if isinstance(got, Failed):
        return False
    calls, i = got
    return skip_ws(text, i, limit) >= limit and not any(
        c.failure is not None or any(r.kind == "closing_tag" and r.detail != note for r in c.repairs)
        for c in calls)

