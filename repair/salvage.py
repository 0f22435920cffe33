"""JSON-ish text -> value.

Order: strict `json` first (valid input is never touched, so apostrophes and backslashes survive byte-exact);
then a lenient scanner for the common, unambiguous damage (single quotes, Python literals, trailing commas,
unquoted keys, raw control characters and invalid escapes inside strings, missing closing brackets); then
json-repair, accepted only when every string in its output comes from the input and every string in the input
survives (it must not invent or drop structure; an empty string in its output stands for one the input wrote, not
for a missing value), every word written outside strings is in its output and every number in its output is one
the input wrote (it reads `2024 election results` as 2024 and drops the rest).
Scanning is linear: tokens are matched by regexes that never fail after a long scan, nesting
is bounded, and json-repair runs only on small fragments within a budget.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import json_repair

from repair.types import WrittenFloat

MAX_DEPTH = 128
MAX_TOKENS = 8192
REPAIR_FRAGMENT_MAX = 8192


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=WrittenFloat)  # numbers keep their text

# One token: a double- or single-quoted string (group 1/2 is the closing quote, absent when unclosed),
# a bracket, or a run of anything else. Each alternative consumes; none can fail after scanning far.
_TOKEN = re.compile(
    r'"[^"\\]*(?:\\[\s\S][^"\\]*)*\\?(")?'
    r"|'[^'\\]*(?:\\[\s\S][^'\\]*)*\\?(')?"
    r"|[{}\[\]]"
    r"|[^\"'{}\[\]]+"
)
# what may follow wire arguments and be dropped: tags and special tokens only
_MARKUP = re.compile(r"(?:\s*(?:</?[A-Za-z][\w:.-]*>|<\|[\w.:-]+\|>|<｜[^｜<>]{1,40}｜>))+")
_NEEDS_FIX = re.compile(r"[\\\x00-\x1f]")
_ESCAPE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})|\\|[\x00-\x1f]')
_SQ_ESCAPE = re.compile(r"\\[\s\S]|\"")
_PY_LITERAL = re.compile(r"(?<![\w$.])(True|False|None)(?![\w$])")
_PY_MAP = {"True": "true", "False": "false", "None": "null"}
_BARE_KEY = re.compile(r"(?<![\w$.\-])([A-Za-z_$][\w$\-]*)(\s*):")
_TRAILING_COMMA = re.compile(r",\s*$")
_CTRL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_SRC_STRING = re.compile(r'"([^"\\]*(?:\\[\s\S][^"\\]*)*)"')  # unrolled: no branch per character


@dataclass
class Budget:
    """How much text json-repair may still be run on for one message."""

    chars: int = 32768
    reach: int = 4 * 65536  # characters strict parses may read past their region (see decode_at)

    def take(self, n: int) -> bool:
        if n > self.chars:
            return False
        self.chars -= n
        return True

    def take_reach(self, n: int) -> bool:
        if n > self.reach:
            return False
        self.reach -= n
        return True


@dataclass
class Decoded:
    value: Any
    end: int
    repairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Failed:
    kind: str  # "invalid_json" | "truncated"
    detail: str
    end: int


# --- string fixes ------------------------------------------------------------------------------------------------

def _fix_escapes(inner: str, notes: set[str]) -> str:
    if not _NEEDS_FIX.search(inner):
        return inner

    def fix(m: re.Match[str]) -> str:
        s = m.group()
        if len(s) > 1:
            return s
        if s == "\\":
            notes.add("invalid escape in string")
            return "\\\\"
        notes.add("raw control character in string")
        return _CTRL.get(s, f"\\u{ord(s):04x}")

    return _ESCAPE.sub(fix, inner)


def _single_to_double(inner: str, notes: set[str]) -> str:
    def fix(m: re.Match[str]) -> str:
        s = m.group()
        if s == "\\'":
            return "'"
        if s == '"':
            return '\\"'
        return s

    return '"' + _fix_escapes(_SQ_ESCAPE.sub(fix, inner), notes) + '"'


# --- the lenient scanner -----------------------------------------------------------------------------------------

@dataclass
class _Scan:
    out: list[str]
    stack: list[str]
    end: int              # after the last significant character consumed
    complete: bool        # the value closed
    in_string: bool
    mismatch: bool
    kinds: dict[str, set[str]]


def _scan(text: str, pos: int, limit: int) -> _Scan | None:
    out: list[str] = []
    stack: list[str] = []
    kinds: dict[str, set[str]] = {}
    i = pos
    end = pos
    mismatch = False
    budget = MAX_TOKENS
    while i < limit:
        budget -= 1
        if budget < 0:
            return None
        m = _TOKEN.match(text, i, limit)
        if m is None:  # pragma: no cover - the token pattern matches any character
            return None
        tok = m.group()
        j = m.end()
        c = tok[0]
        if c == '"':
            if m.group(1) is None:
                return _Scan(out, stack, end, False, True, mismatch, kinds)
            if not stack:
                return None
            out.append('"' + _fix_escapes(tok[1:-1], kinds.setdefault("json_syntax", set())) + '"')
            end = j
        elif c == "'":
            if m.group(2) is None:
                return _Scan(out, stack, end, False, True, mismatch, kinds)
            if not stack:
                return None
            kinds.setdefault("single_quotes", set()).add("single-quoted strings")
            out.append(_single_to_double(tok[1:-1], kinds.setdefault("json_syntax", set())))
            end = j
        elif c in "{[":
            stack.append(c)
            if len(stack) > MAX_DEPTH:
                return None
            out.append(c)
            end = j
        elif c in "}]":
            if not stack:
                return None
            if out and out[-1][:1] not in "\"'{[}]" and _TRAILING_COMMA.search(out[-1]):
                out[-1] = _TRAILING_COMMA.sub("", out[-1])
                kinds.setdefault("trailing_comma", set()).add("trailing comma")
            want = "}" if stack.pop() == "{" else "]"
            if c != want:
                mismatch = True
            out.append(c)
            end = j
            if not stack:
                return _Scan(out, stack, end, True, False, mismatch, kinds)
        else:
            if not stack:
                if tok.strip():
                    return None
                i = j
                continue
            run = tok
            if _PY_LITERAL.search(run):
                run = _PY_LITERAL.sub(lambda mm: _PY_MAP[mm.group(1)], run)
                kinds.setdefault("python_literal", set()).add("Python literals")
            if stack[-1] == "{" and ":" in run:
                fixed = _BARE_KEY.sub(r'"\1"\2:', run)
                if fixed != run:
                    kinds.setdefault("json_syntax", set()).add("unquoted keys")
                    run = fixed
            out.append(run)
            if tok.strip():
                end = i + len(tok.rstrip())
        i = j
    return _Scan(out, stack, end, False, False, mismatch, kinds)


def _notes(kinds: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(k, ", ".join(sorted(v))) for k, v in kinds.items() if v]


def _clean_tail(normalized: str) -> bool:
    t = normalized.rstrip()
    return t.endswith(("}", "]", '"', "true", "false", "null"))


# --- json-repair behind guards -----------------------------------------------------------------------------------

def _strings_of(value: Any, acc: list[str], depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, str):
        acc.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            acc.append(k)
            if not _strings_of(v, acc, depth + 1):
                return False
    elif isinstance(value, list):
        for v in value:
            if not _strings_of(v, acc, depth + 1):
                return False
    return True


_BARE_WORD = re.compile(r"[^\s,:]+")
_LITERAL_WORDS = frozenset({"true", "false", "null", "True", "False", "None"})


def _numbers_of(value: Any, acc: list[float], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        acc.append(float(value))
    elif isinstance(value, dict):
        for v in value.values():
            _numbers_of(v, acc, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _numbers_of(v, acc, depth + 1)


def _as_number(word: str) -> float | None:
    try:
        return float(word)
    except ValueError:
        return None


_KEY_AFTER = re.compile(r"\s*:")


def _bare_words(s: str) -> list[tuple[tuple[str, ...], str]]:
    """The words written outside strings, each with the keys of the members it was written in (`{"a": {"b": x y}}`:
    ("a", "b") for x and y; a key written bare counts in the object that holds it). Inside a list the keys stop
    there: its items are not told apart."""
    out: list[tuple[tuple[str, ...], str]] = []
    # frames: [is an object, keys to it, keys stop (in a list), current key, reading a key]
    frames: list[list[Any]] = [[False, (), False, None, False]]
    for m in _TOKEN.finditer(s):
        tok = m.group()
        top = frames[-1]
        c = tok[0]
        if c in "{[":
            path = top[1] if top[2] or not top[0] or top[3] is None else (*top[1], top[3])
            frames.append([c == "{", path, top[2] or c == "[", None, c == "{"])
        elif c in "}]":
            if len(frames) > 1:
                frames.pop()
        elif c in "\"'":
            if top[0] and (top[4] or _KEY_AFTER.match(s, m.end())):  # (a key after a value without its comma)
                inner = tok[1:-1] if len(tok) > 1 and tok[-1] == c else tok[1:]
                try:
                    top[3] = json.loads('"' + inner + '"') if c == '"' else inner
                except ValueError:
                    top[3] = inner
        else:
            for part in re.split(r"([,:])", tok):
                if part == ",":
                    top[4] = top[0]
                elif part == ":":
                    top[4] = False
                elif top[0] and top[4]:  # a key written bare
                    out.extend((top[1], w) for w in _BARE_WORD.findall(part))
                    if part.strip():
                        top[3] = part.strip()
                else:
                    path = top[1] if top[2] or not top[0] or top[3] is None else (*top[1], top[3])
                    out.extend((path, w) for w in _BARE_WORD.findall(part))
    return out


def _member(value: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(value, dict) or k not in value:
            return None
        value = value[k]
    return value


def _bare_text_survives(s: str, value: Any, produced: list[str]) -> bool:
    """Whether every word written outside strings (`2024 election results`, `10:30 tomorrow`) is in the repaired
    value of the member it was written in (in one of its strings, or as a literal or a number) and every number in
    the value is one the source wrote: json-repair reads bare text up to the first number and drops the rest, or
    splits it into a key. The same words in another member's string do not count (`{"query": 2024 best laptops,
    "context": "the best laptops"}`: the query lost them)."""
    words = _bare_words(s)
    written = {x for x in (_as_number(w) for _, w in words) if x is not None}
    numbers: list[float] = []
    _numbers_of(value, numbers)
    if any(x not in written for x in numbers):
        return False  # a number the model never wrote (`11:00` made the key "11" with the value 0)
    held: dict[tuple[str, ...], tuple[set[str], str, set[float]]] = {}
    for path, w in words:
        if path not in held:
            sub = _member(value, path)
            if sub is None:
                sub = value  # a member json-repair did not keep under its key: the numbers' check above holds
            strings: list[str] = []
            _strings_of(sub, strings)
            kept: list[float] = []
            _numbers_of(sub, kept)
            found = {x for p in strings for x in _BARE_WORD.findall(p)}
            found.update(_LITERAL_WORDS)
            held[path] = (found, "\x00".join(strings), set(kept))
        found, joined, kept_set = held[path]
        if not (w in found or w in joined or _as_number(w) in kept_set):
            return False
    return True


def _guarded_json_repair(fragment: str, budget: Budget | None) -> Any:
    s = fragment.strip()
    if len(s) < 2 or s[0] not in "{[" or len(s) > REPAIR_FRAGMENT_MAX:
        return _FAIL
    if budget is not None and not budget.take(len(s)):
        return _FAIL
    try:
        value = json_repair.loads(s)
        json.dumps(value, allow_nan=False)
    except Exception:
        return _FAIL
    if (s[0] == "{") != isinstance(value, dict) or (s[0] == "[") != isinstance(value, list):
        return _FAIL
    if not value and s[1:-1].strip():
        return _FAIL
    produced: list[str] = []
    if not _strings_of(value, produced):
        return _FAIL
    if produced.count("") > s.count('""') + s.count("''"):
        return _FAIL  # a value the model never wrote (`"content": }` made `""`)
    forms: set[str] = set()
    for p in produced:
        if p not in s and json.dumps(p, ensure_ascii=False)[1:-1] not in s and json.dumps(p)[1:-1] not in s:
            return _FAIL  # invented text
        forms.add(p)
        forms.add(json.dumps(p, ensure_ascii=False)[1:-1])
    for m in _SRC_STRING.finditer(s):
        inner = m.group(1)
        if inner in forms:
            continue
        try:
            decoded = json.loads('"' + inner + '"')
        except ValueError:
            decoded = None
        if decoded not in forms:
            return _FAIL  # dropped or merged text
    if not _bare_text_survives(s, value, produced):
        return _FAIL  # dropped or re-split unquoted text
    return value


class _Fail:
    pass


_FAIL = _Fail()


# --- public entry points ------------------------------------------------------------------------------------------

def decode_at(text: str, pos: int, limit: int | None = None, *, strict_limit: int | None = None,
              reach: bool = False, max_closers: int = 0, budget: Budget | None = None) -> Decoded | Failed:
    """Decode one JSON object/array starting at `pos` (after whitespace), not reading past `limit`.

    `strict_limit` bounds the strict attempt (default `limit`); with `reach`, valid JSON may also run past it
    (markers inside strings), within the budget's reach. The lenient scan stops at `limit`. When the value is
    still open at `limit`, up to `max_closers` closing brackets are appended provided the text stopped at a clean
    point outside any string; at the end of the text that is "truncated", elsewhere "json_syntax".
    """
    n = len(text)
    limit = n if limit is None else min(limit, n)
    strict_limit = limit if strict_limit is None else min(max(strict_limit, limit), n)
    while pos < limit and text[pos] in " \t\r\n":
        pos += 1
    if pos >= limit or text[pos] not in "{[":
        return Failed("invalid_json", "no JSON object", pos)
    try:
        value, end = _DECODER.raw_decode(text[pos:strict_limit])
        return Decoded(value, pos + end)
    except (ValueError, RecursionError):
        pass
    if reach and strict_limit < n and budget is not None and budget.take_reach(n - pos):
        try:
            value, end = _DECODER.raw_decode(text, pos)
            return Decoded(value, end)
        except (ValueError, RecursionError):
            pass
    scan = _scan(text, pos, limit)
    if scan is None:
        return Failed("invalid_json", "not valid JSON", limit)
    normalized = "".join(scan.out)
    if scan.complete:
        if not scan.mismatch:
            try:
                return Decoded(_DECODER.decode(normalized), scan.end, _notes(scan.kinds))
            except (ValueError, RecursionError):
                pass
        fixed = _guarded_json_repair(text[pos:scan.end], budget)
        if not isinstance(fixed, _Fail):
            return Decoded(fixed, scan.end, [("json_syntax", "repaired JSON syntax")])
        return Failed("invalid_json", "could not repair the JSON", scan.end)
    at_eof = limit >= n  # the value is still open where the text ends
    if scan.in_string or scan.mismatch or not _clean_tail(normalized):
        if at_eof:
            return Failed("truncated", "the text ends inside the arguments", n)
        if scan.in_string:
            return Failed("invalid_json", "a string does not close", limit)
        fixed = _guarded_json_repair(text[pos:limit], budget)
        if not isinstance(fixed, _Fail):
            return Decoded(fixed, limit, [("json_syntax", "repaired JSON syntax")])
        return Failed("invalid_json", "could not repair the JSON", limit)
    closers = "".join("}" if c == "{" else "]" for c in reversed(scan.stack))
    if len(closers) > max_closers:
        if at_eof:
            return Failed("truncated", "the text ends inside the arguments", n)
        return Failed("invalid_json", f"{len(closers)} unclosed brackets", limit)
    try:
        value = _DECODER.decode(normalized + closers)
    except (ValueError, RecursionError):
        if at_eof:
            return Failed("truncated", "the text ends inside the arguments", n)
        return Failed("invalid_json", "could not repair the JSON", limit)
    notes = _notes(scan.kinds)
    if at_eof:
        notes.append(("truncated", "output stopped before the call was closed; arguments complete"))
    else:
        notes.append(("json_syntax", "missing closing bracket"))
    return Decoded(value, scan.end, notes)


_RESENT_MAX_CHARS = 256 * 1024
_RESENT_TRIES = 32


def resent_whole(s: str) -> Decoded | None:
    """Arguments streamed in pieces and then sent again whole by a final flush (some servers' stream parsers
    do: the pieces so far, then the complete value): `s` is a start of the value followed by the value itself, and
    the value is what they are. Linear: a place the value could start is compared in full only when its first
    characters are those `s` starts with, and at most `_RESENT_TRIES` times."""
    if len(s) > _RESENT_MAX_CHARS:
        return None
    lead = s[:16]
    k, tries = s.find(s[0], 1), 0
    while 0 < k <= len(s) // 2 + 1 and tries < _RESENT_TRIES:
        if s.startswith(lead[:k], k):
            tries += 1
            if s.startswith(s[:k].rstrip(), k):
                try:
                    value, end = _DECODER.raw_decode(s, k)
                except (ValueError, RecursionError):
                    end = -1
                if end == len(s):
                    return Decoded(value, len(s), [("json_syntax", "arguments sent again whole after their pieces")])
        k = s.find(s[0], k + 1)
    return None


def loads(text: str, *, budget: Budget | None = None) -> Decoded | Failed:
    """A whole text holding one JSON value (wire arguments). As for a call in text, a value that stops at a clean
    point with its last bracket missing is closed ("truncated": some servers' stream parsers drop the final `}`),
    tool-call markup after it (`</tool_call>`, `<|tool_call_end|>`) is dropped, and a value sent again whole after
    its own first pieces is that value."""
    s = text.strip()
    try:
        return Decoded(_DECODER.decode(s), len(text))
    except (ValueError, RecursionError):
        pass
    if s[:1] not in ("{", "["):
        return Failed("invalid_json", "not a JSON object", len(text))
    resent = resent_whole(s)
    if resent is not None:
        return resent
    start = text.index(s[0])
    got = decode_at(text, start, len(text), max_closers=1, budget=budget)
    if isinstance(got, Failed):
        return got
    rest = text[got.end:].strip()
    if rest:
        if not rest.strip("}] \t\r\n"):
            got.repairs.append(("json_syntax", "extra closing bracket"))
        elif _MARKUP.fullmatch(rest):
            got.repairs.append(("json_syntax", "markup after the JSON value"))
        else:
            return Failed("invalid_json", "text after the JSON value", len(text))
    got.end = len(text)
    return got
