"""A yes/no check of arguments against a tool's schema, many times faster than jsonschema's `is_valid` for the
schemas tools declare (types, properties, required, enums, bounds, combinators).

`compile_check(validator)` turns a built jsonschema validator into a plain function giving exactly what
`validator.is_valid` gives, or None when the schema uses a keyword this module does not implement (a `$ref`,
`patternProperties`, `uniqueItems`, ...): the caller then asks jsonschema. Keywords jsonschema does not know are
annotations to it and are ignored here too. Errors (which keyword failed, where) still come from jsonschema.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from typing import Any

from jsonschema import _keywords, _legacy_keywords, _types
from jsonschema._utils import equal

Check = Callable[[Any], bool]
_MAX_DEPTH = 32


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _is_number(x: Any) -> bool:
    kind = type(x)
    if kind is int or kind is float:
        return True
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Check] = {
    "string": lambda x: isinstance(x, str), "number": _is_number, "integer": _is_integer,
    "object": lambda x: isinstance(x, dict), "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool), "null": lambda x: x is None,
}

# keyword -> the jsonschema function whose meaning this module reproduces
_IMPLEMENTED = {
    "type": (_keywords.type,), "properties": (_keywords.properties,), "required": (_keywords.required,),
    "additionalProperties": (_keywords.additionalProperties,), "enum": (_keywords.enum,),
    "const": (_keywords.const,), "minLength": (_keywords.minLength,), "maxLength": (_keywords.maxLength,),
    "minimum": (_keywords.minimum,), "maximum": (_keywords.maximum,),
    "exclusiveMinimum": (_keywords.exclusiveMinimum,), "exclusiveMaximum": (_keywords.exclusiveMaximum,),
    "minItems": (_keywords.minItems,), "maxItems": (_keywords.maxItems,),
    "minProperties": (_keywords.minProperties,), "maxProperties": (_keywords.maxProperties,),
    "pattern": (_keywords.pattern,), "format": (_keywords.format,), "allOf": (_keywords.allOf,),
    "anyOf": (_keywords.anyOf,), "oneOf": (_keywords.oneOf,), "not": (_keywords.not_,),
    "items": (_keywords.items, _legacy_keywords.items_draft6_draft7_draft201909),
}


class _Unsupported(Exception):
    pass


def compile_check(validator: Any) -> Check | None:
    """`validator.is_valid` as a plain function, or None when the schema needs jsonschema itself."""
    cls = type(validator)
    if cls.TYPE_CHECKER is not _types.draft202012_type_checker or validator.format_checker is not None:
        return None  # draft 3/4 integers, asserted formats: not reproduced
    try:
        return _compile(validator.schema, cls.VALIDATORS, 0)
    except (_Unsupported, re.error, LookupError, TypeError, ValueError, RecursionError):
        return None


def _compile(schema: Any, known: dict[str, Any], depth: int) -> Check:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        raise _Unsupported
    checks: list[Check] = []
    for key, value in schema.items():
        func = known.get(key)
        if func is None or key == "format":  # an annotation to jsonschema (format: no checker configured)
            continue
        if func not in _IMPLEMENTED.get(key, ()):
            raise _Unsupported
        checks.append(_keyword(key, value, schema, known, depth))
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    def all_of(x: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a loop, no generator per value validated (runs for every value)
            if not check(x):
                return False
        return True

    return all_of


def _keyword(key: str, value: Any, schema: dict[str, Any], known: dict[str, Any], depth: int) -> Check:
    sub = depth + 1
    if key == "type":
        names = value if isinstance(value, list) else [value]
        types = [_TYPES[n] for n in names]  # KeyError (an unknown type name): jsonschema raises; not here
        return types[0] if len(types) == 1 else lambda x: any(t(x) for t in types)
    if key == "properties":
        return _properties({k: _compile(v, known, sub) for k, v in value.items()})
    if key == "required":
        names = list(value)
        return lambda x: not isinstance(x, dict) or all(map(x.__contains__, names))
    if key == "additionalProperties":
        if "patternProperties" in schema:
            raise _Unsupported
        return _additional(frozenset(schema.get("properties") or ()), _compile(value, known, sub))
    if key in ("enum", "const"):
        options = list(value) if key == "enum" else [value]
        if all(isinstance(o, str) for o in options):
            strings = frozenset(options)
            return lambda x: isinstance(x, str) and x in strings
        return lambda x: any(equal(o, x) for o in options)
    if key == "items":
        if not isinstance(value, dict) and not (isinstance(value, bool) and known["items"] is _keywords.items):
            raise _Unsupported  # a tuple form (draft 7) or a boolean outside 2020-12
        each = _compile(value, known, sub)
        return lambda x: not isinstance(x, list) or all(each(i) for i in x)
    if key in ("allOf", "anyOf", "oneOf"):
        subs = [_compile(s, known, sub) for s in value]
        if key == "allOf":
            return lambda x: all(s(x) for s in subs)
        if key == "anyOf":
            return lambda x: any(s(x) for s in subs)
        return lambda x: sum(1 for s in subs if s(x)) == 1
    if key == "not":
        inner = _compile(value, known, sub)
        return lambda x: not inner(x)
    if key == "pattern":
        search = re.compile(value).search
        return lambda x: not isinstance(x, str) or search(x) is not None
    return _bound(key, value)


def _properties(subs: dict[str, Check]) -> Check:
    items = list(subs.items())

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, sub in items:  # noqa: SIM110 - a loop, no generator per object validated
            if name in x and not sub(x[name]):
                return False
        return True

    return check


def _additional(declared: frozenset[str], sub: Check) -> Check:
    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, v in x.items():  # noqa: SIM110 - a loop, no generator per object validated
            if name not in declared and not sub(v):
                return False
        return True

    return check


def _bound(key: str, limit: Any) -> Check:
    if key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        kind = {"L": str, "I": list, "P": dict}[key[3]]  # minLength/maxLength, ...Items, ...Properties
        if key.startswith("min"):
            return lambda x: not isinstance(x, kind) or len(x) >= limit
        return lambda x: not isinstance(x, kind) or len(x) <= limit
    if key == "minimum":
        return lambda x: not _is_number(x) or not x < limit
    if key == "maximum":
        return lambda x: not _is_number(x) or not x > limit
    if key == "exclusiveMinimum":
        return lambda x: not _is_number(x) or not x <= limit
    if key == "exclusiveMaximum":
        return lambda x: not _is_number(x) or not x >= limit
    raise _Unsupported
