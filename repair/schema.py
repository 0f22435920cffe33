"""Arguments against a tool's JSON Schema: validation (jsonschema), unambiguous coercion, typing of XML values."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, best_match

_INT = re.compile(r"[+-]?\d+(?:\.0*)?")
_NUM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DEPTH = 32


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    return []


def _json_literal(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject)
    except (ValueError, RecursionError):
        return _NOPE


def _reject(name: str) -> Any:
    raise ValueError(name)


class _Nope:
    pass


_NOPE = _Nope()


def _convert_str(value: str, types: list[str]) -> Any:
    """`value` converted to the first of `types` it unambiguously denotes, else _NOPE."""
    s = value.strip()
    for t in types:
        if t == "integer" and _INT.fullmatch(s):
            return int(float(s)) if "." in s else int(s)
        if t == "number" and _NUM.fullmatch(s):
            if _INT.fullmatch(s) and "." not in s:
                return int(s)
            f = float(s)
            return f
        if t == "boolean" and s.lower() in ("true", "false"):
            return s.lower() == "true"
        if t == "null" and s.lower() in ("null", "none"):
            return None
        if t in ("array", "object") and s[:1] in "[{":
            v = _json_literal(s)
            if (t == "array" and isinstance(v, list)) or (t == "object" and isinstance(v, dict)):
                return v
    return _NOPE


@dataclass
class ToolSchema:
    """One declared tool: its name and parameter schema, with a validator built on first use."""

    name: str
    parameters: dict[str, Any] | None
    _validator: Any = field(default=None, repr=False)
    _checked: bool = field(default=False, repr=False)

    def validator(self) -> Any:
        if not self._checked:
            self._checked = True
            if isinstance(self.parameters, dict) and self.parameters:
                cls = jsonschema.validators.validator_for(self.parameters, default=jsonschema.Draft202012Validator)
                try:
                    cls.check_schema(self.parameters)
                    self._validator = cls(self.parameters)
                except SchemaError:
                    self._validator = None  # an invalid declared schema validates nothing
        return self._validator

    # --- validation and coercion -------------------------------------------------------------------------------

    def first_error(self, args: dict[str, Any]) -> str | None:
        v = self.validator()
        if v is None:
            return None
        try:
            if v.is_valid(args):
                return None
            err = best_match(v.iter_errors(args))
        except Exception:
            return None
        if err is None:
            return None
        path = "/".join(str(p) for p in err.absolute_path)
        msg = err.message if len(err.message) <= 200 else err.message[:200] + "..."
        return f"{path}: {msg}" if path else msg

    def conform(self, args: dict[str, Any]) -> tuple[dict[str, Any], list[str], str | None]:
        """(arguments, coercions made, error). error is None when the result validates."""
        error = self.first_error(args)
        if error is None:
            return args, [], None
        root = self.parameters if isinstance(self.parameters, dict) else {}
        changes: list[str] = []
        coerced = _coerce(root, root, args, "", changes, 0)
        if not changes:
            return args, [], error
        error2 = self.first_error(coerced)
        if error2 is None:
            return coerced, changes, None
        return args, [], error

    def type_text_values(self, args: dict[str, Any]) -> dict[str, Any]:
        """Values of XML-style formats arrive as text; give them the declared types (native, not a repair)."""
        root = self.parameters if isinstance(self.parameters, dict) else {}
        props = root.get("properties") if isinstance(root.get("properties"), dict) else {}
        out: dict[str, Any] = {}
        for key, value in args.items():
            if not isinstance(value, str):
                out[key] = value
                continue
            sub = _deref(root, props.get(key)) if isinstance(props, dict) else None
            out[key] = _type_text(root, sub, value)
        return out


def _type_text(root: dict[str, Any], schema: Any, value: str) -> Any:
    if not isinstance(schema, dict):
        v = _json_literal(value.strip())
        return value if isinstance(v, _Nope) else v
    types = _types(schema)
    if not types:
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list):
                for b in branches:
                    types += _types(_deref(root, b) or {})
    if not types:
        if "enum" in schema or "const" in schema:
            return value
        v = _json_literal(value.strip())
        return value if isinstance(v, _Nope) else v
    if "string" in types:
        if value.strip().lower() == "null" and "null" in types:
            return None
        return value
    v = _convert_str(value, types)
    return value if isinstance(v, _Nope) else v


def _deref(root: dict[str, Any], schema: Any, depth: int = 0) -> Any:
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 16:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        node: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return schema
            node = node[part]
        schema = node
        depth += 1
    return schema


def _valid(root: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    sub = dict(schema)
    for key in ("$defs", "definitions"):
        if key in root and key not in sub:
            sub[key] = root[key]
    try:
        cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
        return bool(cls(sub).is_valid(value))
    except Exception:
        return False


def _coerce(root: dict[str, Any], schema: Any, value: Any, path: str, changes: list[str], depth: int) -> Any:
    schema = _deref(root, schema)
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return value
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            if any(_valid(root, _deref(root, b) or {}, value) for b in branches if isinstance(b, dict)):
                return value
            fits = []
            for b in branches:
                trial: list[str] = []
                v = _coerce(root, b, value, path, trial, depth + 1)
                if trial and _valid(root, _deref(root, b) or {}, v):
                    fits.append((v, trial))
            if len(fits) == 1:
                changes.extend(fits[0][1])
                return fits[0][0]
            return value
    types = _types(schema)
    label = path or "arguments"
    if isinstance(value, str) and types and "string" not in types:
        v = _convert_str(value, types)
        if not isinstance(v, _Nope):
            changes.append(f"{label}: {json.dumps(value, ensure_ascii=False)[:60]} -> {types[0]}")
            value = v
    elif (isinstance(value, (int, float)) and not isinstance(value, bool) and types == ["string"]):
        changes.append(f"{label}: {value!r} -> string")
        return json.dumps(value)
    if isinstance(value, dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            out[k] = _coerce(root, sub, v, f"{path}/{k}" if path else k, changes, depth + 1) if sub else v
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [_coerce(root, items, v, f"{path}/{i}", changes, depth + 1) for i, v in enumerate(value)]
    return value
