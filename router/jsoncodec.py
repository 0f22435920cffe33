"""JSON on the request path: orjson where it gives what the standard library gives, the standard library where it
would not. On a coding agent's 40 KB request, parsing and encoding with the standard library was a third of the
router's time (py-spy, bench/proxy); orjson does each several times faster.

`loads` takes the standard library's way for a body with an integer of 20 or more digits, or a negative one of
19 (orjson reads integers in [-2^63, 2^64) and turns one outside into a float), or a `\\uD800`-style escape
(orjson refuses lone surrogates; the caller reports them itself). NaN, Infinity and numbers that overflow a
double are refused either way. `dumps` gives compact UTF-8 and falls back to the standard library for what orjson
cannot encode (integers beyond 64 bits, non-string keys).
"""

from __future__ import annotations

import json
import re
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps a broken install working
    orjson = None  # type: ignore[assignment]

# every digit -> "0", a minus sign kept, anything else -> " "
_DIGITS = bytes(48 if 48 <= i <= 57 else 45 if i == 45 else 32 for i in range(256))
_LONG_INT = b"0" * 20
_LONG_NEGATIVE = b"-" + b"0" * 19  # below -2^63 takes 19 digits
_STRIDE = 4
_SPOT = b"0" * 4  # a run of 19 or more covers at least 4 multiples of 4
_MAX_SPOTS = 16  # places looked at one by one before the whole text is
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _no_overflow(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} overflows a double")
    return value


def std_loads(raw: bytes | str) -> Any:
    """The standard library's parse, with the same refusals as `loads`."""
    return json.loads(raw, parse_constant=_no_constant, parse_float=_no_overflow)


class LoneSurrogate(ValueError):
    """A `\\uD800`-style escape that is not half of a pair: no UTF-8 text can hold it."""


def loads(raw: bytes) -> Any:
    """Raises ValueError (or RecursionError) for what is not JSON."""
    value = _fast_loads(raw)
    return std_loads(raw) if value is _STD else value


def loads_text(raw: bytes) -> Any:
    """`loads` refusing a lone surrogate escape (`LoneSurrogate`): a request body must be UTF-8 text throughout."""
    value = _fast_loads(raw)
    if value is not _STD:
        return value
    value = std_loads(raw)
    if has_surrogate_escape(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise LoneSurrogate("an unpaired UTF-16 surrogate escape") from None
    return value


_STD = object()


def _fast_loads(raw: bytes) -> Any:
    """orjson's reading, or `_STD` where the standard library's may differ: a long integer, or a surrogate escape
    orjson refused (it reads a pair as the standard library does and refuses a lone one, which the standard
    library reads)."""
    if orjson is None or has_long_int(raw):
        return _STD
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if has_surrogate_escape(raw):
            return _STD
        raise


def loads_without_surrogates(raw: bytes) -> Any:
    """`loads` for a body already known to hold no surrogate escape."""
    if orjson is None or has_long_int(raw):
        return std_loads(raw)
    return orjson.loads(raw)


def has_long_int(raw: bytes) -> bool:
    """Whether `raw` holds a run of 20 digits or a minus sign and 19 (an integer orjson would read as a float, or a
    harmless string). Such a run covers at least four consecutive multiples of 4, so every 4th byte is looked at
    first and only the places where four of those in a row are digits are looked at whole (numbered lines, dates
    and ids rarely make one)."""
    sample = raw[::_STRIDE].translate(_DIGITS)
    at = sample.find(_SPOT)
    for _ in range(_MAX_SPOTS):
        if at < 0:
            return False
        start = at * _STRIDE
        if _is_long(raw[max(0, start - _STRIDE):start + 6 * _STRIDE].translate(_DIGITS)):
            return True
        at = sample.find(_SPOT, at + 1)
    return at >= 0 and _is_long(raw.translate(_DIGITS))  # digits everywhere: one pass over it all


def _is_long(shape: bytes) -> bool:
    return _LONG_INT in shape or _LONG_NEGATIVE in shape


def has_surrogate_escape(raw: bytes) -> bool:
    return _SURROGATE_ESCAPE.search(raw) is not None


def dumps_text(obj: Any) -> str:
    """One log line: compact JSON text; what JSON cannot encode is written as its str()."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=str).decode()
        except TypeError:
            pass
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


class TooDeep(ValueError):
    """A value nested deeper than JSON can be written here (orjson reads 1,024 levels, writes 255; the standard
    library writes up to the interpreter's recursion limit)."""


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON. A lone surrogate in a string (an upstream may send one as a `\\uD800` escape, and a
    stream may cut a pair in two) is written as that escape, the one way JSON text can hold it: the value reads
    back the same."""
    if orjson is not None:
        try:
            return orjson.dumps(obj)
        except TypeError:  # orjson.JSONEncodeError included
            pass
    # a surrogate can only stand inside a string, where its backslash escape is JSON's own
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
    except RecursionError:
        raise TooDeep("a value nested too deep to write as JSON") from None
