"""Tool-call arguments streamed as they are generated.

`JsonEvents` reads strict JSON incrementally (text in, structural events out, however the text is chunked).
`ArgsEmitter` turns the events of an arguments object into the text `canonical_arguments` would give for the
whole object (``json.dumps(value, ensure_ascii=False)``), emitting each piece as soon as it can no longer change:
string values of string-typed properties character by character, any other value once it is complete (coerced
against the tool's schema the way the one-shot path coerces it). Concatenated, the pieces are a prefix of the
final canonical arguments whenever the upstream wrote valid JSON that needed no other repair; where it did not, the
caller detects the difference at the end (see "Failure after the header" in README.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repair.schema import ToolSchema, _coerce, _deref, _types
from repair.types import WrittenFloat

# --- events the streaming repairer adds to ContentDelta / ReasoningDelta / ToolCallDelta ---------------------------


@dataclass
class ToolCallStart:
    """A call's header: its output index, id and resolved declared name (arguments follow as ToolArgsDelta)."""

    index: int
    id: str
    name: str


@dataclass
class ToolArgsDelta:
    """More of the arguments of the call started at `index`."""

    index: int
    text: str


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # json.dumps's, without building one per call
_encode_string = json.encoder.encode_basestring  # what that encoder writes for a str


def canonical_arguments(arguments: str) -> str:
    """Arguments as agentgate sends them: the decoded object re-serialised (`json.dumps`, `ensure_ascii=False`),
    so a stream's concatenated argument pieces and the non-stream answer are the same string. Text that is not a
    JSON object (which a repaired call never is) is returned unchanged."""
    try:
        value = json.loads(arguments)
        if not isinstance(value, dict):
            return arguments
        return _ENCODER.encode(value)
    except (ValueError, RecursionError):
        return arguments


_NUMBER_DECODER = json.JSONDecoder(parse_float=WrittenFloat)


def _number(text: str) -> Any:
    """A number token as the whole repair decodes it (see `salvage`): a fraction or exponent keeps its text."""
    return _NUMBER_DECODER.decode(text)


# --- the tokenizer -----------------------------------------------------------------------------------------------

class JsonBroken(Exception):
    """The text is not strict JSON (the one-shot path may still repair it)."""


_PLAIN = re.compile(r'(?:[^"\\]|\\["\\/bfnrt])[^"\\]*(?:\\["\\/bfnrt][^"\\]*)*')  # text and one-character escapes
# (text + '"', 0, False): the string's escapes decoded, control characters kept (as read here); C where it can be
_scan_string: Callable[[str, int, bool], tuple[str, int]] = vars(json.decoder)["scanstring"]
# a whole member's key without escapes and colon (and a string value's opening quote): the first, or the next after
# its comma. No pattern here can match one text in two ways (no backtracking over a run that fails at its end)
_FIRST_KEY = re.compile(r'[ \t\r\n]*"([^"\\]*)"[ \t\r\n]*:[ \t\r\n]*(")?')
_NEXT_KEY = re.compile(r'[ \t\r\n]*,[ \t\r\n]*"([^"\\]*)"[ \t\r\n]*:[ \t\r\n]*(")?')
_NUM_CHARS = frozenset("0123456789+-.eE")
_LITERALS = {"true": True, "false": False, "null": None}
_ESC = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WS = " \t\r\n"

# event kinds
OBJ, END_OBJ, ARR, END_ARR, KEY, STR, CHARS, END_STR, LIT = range(9)

(_VALUE, _KEY_OR_END, _KEY, _COLON, _AFTER, _IN_STR, _ESCAPE, _UESC, _NUM, _LIT, _DONE, _VALUE_OR_END,
 _LIT_END) = range(13)


class JsonEvents:
    """Incremental strict-JSON reader for one value. `feed(text)` returns events: (OBJ,), (END_OBJ,), (ARR,),
    (END_ARR,), (KEY, name), (STR,) a string value begins, (CHARS, text), (END_STR,), (LIT, value). Once the
    value is complete `done` is true and `rest_at` is the offset in the last fed text where the value ended.
    Raises JsonBroken on anything strict JSON does not allow. Memory: the nesting stack and one key or token.
    A number or literal inside an object or array is a value only once what follows it is a comma or the closing
    bracket: `{"query": 2024 election results}` is unquoted text, not the number 2024 (json-repair would cut it
    there, which the one-shot repair refuses), so no (LIT,) comes for it."""

    __slots__ = ("_buf", "_high", "_key", "_lit", "_stack", "_state", "_str_is_key", "_val", "done", "rest_at")

    def __init__(self) -> None:
        self._stack: list[bool] = []  # True: object, False: array
        self._state = _VALUE
        self._str_is_key = False
        self._key: list[str] = []
        self._buf = ""  # \uXXXX digits, a number or a literal being read
        self._high = ""  # a high surrogate waiting for its pair
        self._lit = ""
        self._val: Any = None  # a number or literal read, waiting for what follows it (_LIT_END)
        self.done = False
        self.rest_at = 0

    def _chars(self, text: str, out: list[tuple[Any, ...]]) -> None:
        if self._high:
            text, self._high = self._high + text, ""
        if self._str_is_key:
            self._key.append(text)
        elif out and out[-1][0] == CHARS:
            out[-1] = (CHARS, out[-1][1] + text)
        else:
            out.append((CHARS, text))

    def _value_done(self) -> None:
        self._state = _AFTER if self._stack else _DONE

    def feed(self, text: str) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        i, n = 0, len(text)
        while i < n:
            st = self._state
            if st == _IN_STR:
                m = _PLAIN.match(text, i)
                if m is not None:  # a run of text and whole one-character escapes at once
                    run = m.group()
                    if "\\" in run:
                        run = _scan_string(run + '"', 0, False)[0]
                    if "\ud800" <= run[-1] <= "\udbff":  # a high surrogate at its end waits for its pair (the low one
                        if len(run) > 1 or self._high:  # may come with the next piece: sent apart, each half is a
                            self._chars(run[:-1], out)  # lone surrogate, which a client cannot encode or join)
                        self._high = run[-1]
                    else:
                        self._chars(run, out)
                    i = m.end()
                    continue
                c = text[i]
                i += 1
                if c == "\\":
                    self._state = _ESCAPE
                    continue
                if self._high:  # a lone high surrogate before the closing quote stays as it is
                    h, self._high = self._high, ""
                    self._chars(h, out)
                if self._str_is_key:
                    out.append((KEY, "".join(self._key)))
                    self._key = []
                    self._state = _COLON
                else:
                    out.append((END_STR,))
                    self._value_done()
                continue
            if st in (_KEY_OR_END, _KEY) or (st == _AFTER and self._stack[-1]):
                m = (_NEXT_KEY if st == _AFTER else _FIRST_KEY).match(text, i)
                if m is not None:  # what the states below make of it one character at a time
                    out.append((KEY, m.group(1)))
                    if m.group(2):
                        out.append((STR,))
                        self._str_is_key, self._state = False, _IN_STR
                    else:
                        self._state = _VALUE
                    i = m.end()
                    continue
            c = text[i]
            if st == _ESCAPE:
                i += 1
                if c == "u":
                    self._buf, self._state = "", _UESC
                    continue
                if c not in _ESC:
                    raise JsonBroken(f"bad escape \\{c}")
                self._chars(_ESC[c], out)
                self._state = _IN_STR
                continue
            if st == _UESC:
                i += 1
                if c not in "0123456789abcdefABCDEF":
                    raise JsonBroken("bad \\u escape")
                self._buf += c
                if len(self._buf) == 4:
                    code = int(self._buf, 16)
                    self._state = _IN_STR
                    if 0xD800 <= code < 0xDC00:
                        if self._high:
                            h, self._high = self._high, ""
                            self._chars(h, out)
                        self._high = chr(code)
                    elif 0xDC00 <= code < 0xE000 and self._high:
                        pair = (ord(self._high) - 0xD800) * 0x400 + (code - 0xDC00) + 0x10000
                        self._high = ""
                        self._chars(chr(pair), out)
                    else:
                        self._chars(chr(code), out)
                continue
            if st == _NUM:
                if c in _NUM_CHARS:
                    self._buf += c
                    i += 1
                    continue
                try:
                    value = _number(self._buf)
                except ValueError:
                    raise JsonBroken(f"bad number {self._buf[:20]!r}") from None
                if self._stack:
                    self._val, self._state = value, _LIT_END
                else:
                    out.append((LIT, value))
                    self._value_done()
                continue  # the delimiter is read in the new state
            if st == _LIT:
                self._lit += c
                i += 1
                if self._lit in _LITERALS:
                    if self._stack:
                        self._val, self._state = _LITERALS[self._lit], _LIT_END
                    else:
                        out.append((LIT, _LITERALS[self._lit]))
                        self._value_done()
                elif not any(k.startswith(self._lit) for k in _LITERALS):
                    raise JsonBroken("bad literal")
                continue
            if c in _WS:
                i += 1
                continue
            if st == _LIT_END:  # (the comma or bracket is read in the new state)
                if c != "," and c != ("}" if self._stack[-1] else "]"):
                    raise JsonBroken(f"unexpected {c!r} after a value (unquoted text)")
                out.append((LIT, self._val))
                self._val = None
                self._state = _AFTER
                continue
            if st == _DONE:
                self.done, self.rest_at = True, i
                return out
            i += 1
            if st in (_VALUE, _VALUE_OR_END):
                if c == "{":
                    self._stack.append(True)
                    out.append((OBJ,))
                    self._state = _KEY_OR_END
                elif c == "[":
                    self._stack.append(False)
                    out.append((ARR,))
                    self._state = _VALUE_OR_END
                elif c == '"':
                    out.append((STR,))
                    self._str_is_key, self._state = False, _IN_STR
                elif c == "-" or c.isdigit():
                    self._buf, self._state = c, _NUM
                elif c in "tfn":
                    self._lit, self._state = c, _LIT
                elif c == "]" and st == _VALUE_OR_END:
                    self._stack.pop()
                    out.append((END_ARR,))
                    self._value_done()
                else:
                    raise JsonBroken(f"unexpected {c!r}")
            elif st in (_KEY_OR_END, _KEY):
                if c == '"':
                    self._str_is_key, self._state = True, _IN_STR
                elif c == "}" and st == _KEY_OR_END:
                    self._stack.pop()
                    out.append((END_OBJ,))
                    self._value_done()
                else:
                    raise JsonBroken(f"unexpected {c!r} where a key belongs")
            elif st == _COLON:
                if c != ":":
                    raise JsonBroken("missing ':'")
                self._state = _VALUE
            elif st == _AFTER:
                top = self._stack[-1]
                if c == ",":
                    self._state = _KEY if top else _VALUE
                elif c == ("}" if top else "]"):
                    self._stack.pop()
                    out.append((END_OBJ,) if top else (END_ARR,))
                    self._value_done()
                else:
                    raise JsonBroken(f"unexpected {c!r} after a value")
        if self._state == _DONE:
            self.done, self.rest_at = True, n
        return out

    def finish_number(self) -> list[tuple[Any, ...]]:
        """A number at the very end of the text is complete (nothing else can follow a root number)."""
        if self._state != _NUM:
            return []
        try:
            value = _number(self._buf)
        except ValueError:
            raise JsonBroken("bad number") from None
        self._value_done()
        self.done = True
        return [(LIT, value)]


# --- building held values ------------------------------------------------------------------------------------------

class _Builder:
    """Assembles one value from events (for values that go out only once complete)."""

    __slots__ = ("_key", "_stack", "_str", "complete", "value")

    def __init__(self) -> None:
        self._stack: list[Any] = []
        self._key: list[str | None] = []
        self._str: list[str] | None = None
        self.value: Any = None
        self.complete = False

    def _put(self, v: Any) -> None:
        if not self._stack:
            self.value, self.complete = v, True
            return
        top = self._stack[-1]
        if isinstance(top, dict):
            top[self._key[-1]] = v
        else:
            top.append(v)

    def event(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == CHARS:
            assert self._str is not None
            self._str.append(ev[1])
        elif kind == STR:
            self._str = []
        elif kind == END_STR:
            s, self._str = "".join(self._str or []), None
            self._put(s)
        elif kind == LIT:
            self._put(ev[1])
        elif kind == KEY:
            self._key[-1] = ev[1]
        elif kind in (OBJ, ARR):
            self._stack.append({} if kind == OBJ else [])
            self._key.append(None)
        else:  # END_OBJ / END_ARR
            self._key.pop()
            self._put(self._stack.pop())


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _escaped(text: str) -> str:
    return _encode_string(text)[1:-1]


# --- the emitter ---------------------------------------------------------------------------------------------------

class ArgsEmitter:
    """Events of one arguments object in, canonical argument text out, piece by piece (see the module doc).
    `broken` turns true when the object is not one strict JSON object; nothing more is emitted then."""

    def __init__(self, tool: ToolSchema | None) -> None:
        self._tool = tool
        root = tool.parameters if tool is not None and isinstance(tool.parameters, dict) else None
        self._root = root
        props = root.get("properties") if root is not None else None
        self._props: dict[str, Any] = props if isinstance(props, dict) else {}
        extra = root.get("additionalProperties") if root is not None else None
        self._extra = extra if isinstance(extra, dict) else None
        self.depth = 0
        self.members = 0
        self.broken = False
        self.closed = False
        self._key: str | None = None
        self._held: _Builder | None = None
        self._held_key = ""
        self._in_str = False  # a streamed string value is open
        self._value_pending = False  # "key": went out, the value did not begin yet

    def _schema_for(self, key: str) -> Any:
        if self._root is None:
            return None
        sub = self._props.get(key) if key in self._props else self._extra
        return _deref(self._root, sub) if sub is not None else None

    def _streams_as_string(self, key: str) -> bool:
        """A string value of `key` can go out as it arrives: coercion never changes a string the schema wants."""
        if self._root is None:
            return True
        sub = self._schema_for(key)
        if sub is None:
            return True
        if not isinstance(sub, dict) or "anyOf" in sub or "oneOf" in sub:
            return False
        types = _types(sub)
        return not types or "string" in types

    def _coerced(self, key: str, value: Any) -> Any:
        sub = self._schema_for(key)
        if self._root is None or sub is None:
            return value
        changes: list[str] = []
        return _coerce(self._root, sub, value, key, changes, 1)

    def feed(self, events: list[tuple[Any, ...]]) -> str:
        out: list[str] = []
        for ev in events:
            if self.broken or self.closed:
                break
            kind = ev[0]
            if self._held is not None:
                self._held.event(ev)
                if self._held.complete:
                    try:
                        out.append(_dumps(self._coerced(self._held_key, self._held.value)))
                    except (TypeError, ValueError, RecursionError):
                        self.broken = True
                        break
                    self._held, self._value_pending = None, False
                continue
            if self.depth == 0:
                if kind != OBJ:
                    self.broken = True
                    break
                self.depth = 1
                out.append("{")
                continue
            if self._in_str:
                if kind == CHARS:
                    out.append(_escaped(ev[1]))
                else:  # END_STR
                    out.append('"')
                    self._in_str = self._value_pending = False
                continue
            if kind == KEY:
                self._key = ev[1]
                continue
            if kind == END_OBJ:
                out.append("}")
                self.closed = True
                self.depth = 0
                continue
            key = self._key or ""
            out.append((", " if self.members else "") + _dumps(key) + ": ")
            self.members += 1
            self._value_pending = True
            if kind == STR and self._streams_as_string(key):
                out.append('"')
                self._in_str = True
            else:
                self._held, self._held_key = _Builder(), key
                self._held.event(ev)
                if self._held.complete:  # a literal
                    try:
                        out.append(_dumps(self._coerced(key, self._held.value)))
                    except (TypeError, ValueError, RecursionError):
                        self.broken = True
                        break
                    self._held, self._value_pending = None, False
        return "".join(out)

    def closer(self) -> str:
        """What completes the text emitted so far into a JSON object."""
        if self.closed:
            return ""
        if self.depth == 0:
            return "{}"
        out = ""
        if self._in_str:
            out += '"'
        elif self._value_pending:
            out += "null"
        return out + "}"


# a string's text whose one-character escapes re-encode as written (`json.dumps` writes \" \\ \b \f \n \r \t so, but not
# \/ or \u, and it escapes every control character): the same text after a decode and a re-encode
_VERBATIM = re.compile(r'[^"\\\x00-\x1f]*(?:\\["\\bfnrt][^"\\\x00-\x1f]*)*')


def string_run(events: JsonEvents, emitter: ArgsEmitter, text: str) -> bool:
    """Whether `emitter.feed(events.feed(text))` is `text` itself, leaving both as they were: both are inside a
    string value that goes out as it arrives (see `ArgsEmitter`), and `text` is such a string's text only (no
    closing quote, no escape cut at its end, none that re-encodes otherwise)."""
    return events._state == _IN_STR and not events._str_is_key and not events._high and emitter._in_str \
        and not emitter.broken and not emitter.closed and _VERBATIM.fullmatch(text) is not None \
        and not (text and "\ud800" <= text[-1] <= "\udbff")  # (a high surrogate at its end waits for its pair)
