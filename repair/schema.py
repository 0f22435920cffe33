"""Arguments against a tool's JSON Schema: validation (jsonschema), unambiguous coercion, typing of XML values."""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jsonschema
from jsonschema.exceptions import SchemaError, best_match

from repair.fastvalid import compile_check
from repair.types import WrittenFloat, json_object

_INT = re.compile(r"[+-]?\d+(?:\.0*)?")
_NUM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DEPTH = 32
_LITERAL_OPENERS = ("[", "{", "(", '"', "'", "- ", "* ")  # a string opening so is no lone value (see `_one_item`)
_LIST_SEPARATORS = re.compile(r"[,;\n|]")  # a string holding one may be a list written as text: no lone value
_NULL_WORDS = frozenset(("null", "none", "nil", "undefined"))


# Type names tool schemas use that JSON Schema does not (Python, TypeScript and SQL spellings).
TYPE_ALIASES = {
    "float": "number", "double": "number", "decimal": "number", "num": "number", "int": "integer", "long": "integer",
    "short": "integer", "uint": "integer", "int32": "integer", "int64": "integer", "str": "string", "text": "string",
    "varchar": "string", "char": "string", "bool": "boolean", "binary": "boolean", "dict": "object", "map": "object",
    "list": "array", "arr": "array", "tuple": "array", "none": "null", "nil": "null",
}
_JSON_TYPES = frozenset(("string", "number", "integer", "boolean", "object", "array", "null"))
_MAX_NODES = 4096


def normalise_schema(schema: Any) -> tuple[Any, list[str]]:
    """A copy of `schema` with non-standard type names mapped to JSON Schema's (`float` -> `number`, ...); type
    names that still mean nothing are dropped (that node then accepts any type) and listed in the notes."""
    notes: list[str] = []
    budget = [_MAX_NODES]

    def walk(node: Any, path: str, depth: int) -> Any:
        budget[0] -= 1
        if depth > _MAX_DEPTH or budget[0] < 0:
            return node
        if isinstance(node, list):
            return [walk(x, path, depth + 1) for x in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "type" and isinstance(v, (str, list)):
                names = [v] if isinstance(v, str) else v
                fixed: list[Any] = []
                for t in names:
                    if not isinstance(t, str):
                        fixed.append(t)
                        continue
                    low = t.strip().lower()
                    std = low if low in _JSON_TYPES else TYPE_ALIASES.get(low)
                    if std is None:
                        notes.append(f"{path or 'parameters'}: unknown type {t!r} ignored")
                    elif std not in fixed:
                        fixed.append(std)
                if fixed:
                    out[k] = fixed[0] if isinstance(v, str) or len(fixed) == 1 else fixed
                continue
            if k in ("properties", "$defs", "definitions", "patternProperties") and isinstance(v, dict):
                out[k] = {pk: walk(pv, f"{path}/{pk}" if path else pk, depth + 1) for pk, pv in v.items()}
            elif k in ("enum", "const", "default", "examples", "required"):
                out[k] = v
            else:
                out[k] = walk(v, path, depth + 1)
        return out

    return walk(schema, "", 0), notes


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


def _python_literal(text: str) -> Any:
    """A Python literal object/array ({'a': True}, ['x', None]) as JSON values; _NOPE when it is not one."""
    if len(text) > 65536:
        return _NOPE
    try:
        value = ast.literal_eval(text)
        return json.loads(json.dumps(value, allow_nan=False))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOPE


def _reject(name: str) -> Any:
    raise ValueError(name)


class _Nope:
    pass


_NOPE = _Nope()


def _convert_str(value: str, types: list[str]) -> Any:
    """`value` converted to the first of `types` it unambiguously denotes, else _NOPE. A number Python will not
    convert (an integer past `sys.get_int_max_str_digits()` digits) or a float cannot hold (1e999) denotes none."""
    s = value.strip()
    for t in types:
        try:
            if t == "integer" and _INT.fullmatch(s):
                return int(s.partition(".")[0])  # "N.0": the digits before the point, exact past 2**53 (float is not)
            if t == "number" and _NUM.fullmatch(s):
                if _INT.fullmatch(s) and "." not in s:
                    return int(s)
                f = float(s)
                if math.isfinite(f):
                    return f
                continue
        except ValueError:
            continue
        if t == "boolean" and s.lower() in ("true", "false"):
            return s.lower() == "true"
        if t == "null" and s.lower() in ("null", "none"):
            return None
        if t in ("array", "object") and s[:1] in "[{":
            v = _json_literal(s)
            if isinstance(v, _Nope):
                v = _python_literal(s)
            if (t == "array" and isinstance(v, list)) or (t == "object" and isinstance(v, dict)):
                return v
    return _NOPE


@dataclass
class ToolSchema:
    """One declared tool: its name and parameter schema, with a validator built on first use."""

    name: str
    parameters: dict[str, Any] | None
    schema_notes: list[str] = field(default_factory=list)  # what of the declared schema could not be used
    _validator: Any = field(default=None, repr=False)
    _checked: bool = field(default=False, repr=False)
    _fast: Callable[[Any], bool] | None = field(default=None, repr=False)  # _validator.is_valid, quicker
    _nodes: Nodes = field(default_factory=dict, repr=False)  # its schema's nodes as coercion read them

    def __post_init__(self) -> None:
        if isinstance(self.parameters, dict):
            self.parameters, self.schema_notes = normalise_schema(self.parameters)

    def validator(self) -> Any:
        if not self._checked:
            self._checked = True
            if isinstance(self.parameters, dict) and self.parameters:
                self._validator = self._build(self.parameters)
                self._fast = compile_check(self._validator) if self._validator is not None else None
        return self._validator

    def _build(self, schema: dict[str, Any]) -> Any:
        """A validator for the schema; parts that are not valid JSON Schema are removed one at a time (and
        listed in schema_notes), so the rest still validates."""
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        for _ in range(16):
            try:
                cls.check_schema(schema)
                return cls(schema)
            except SchemaError as e:
                path = list(e.path)
                if not path:
                    break
                schema = _without(schema, path)
                self.schema_notes.append(f"invalid schema at {'/'.join(map(str, path))}: {e.message[:120]} "
                                         "(ignored)")
                self.parameters = schema
            except Exception:
                break
        self.schema_notes.append("the declared schema is not valid JSON Schema; arguments are not validated")
        return None

    # --- validation and coercion -------------------------------------------------------------------------------

    def first_error(self, args: dict[str, Any]) -> str | None:
        v = self.validator()
        if v is None:
            return None
        try:
            valid = self._fast(args) if self._fast is not None else None
        except Exception:  # left to jsonschema, which decides what such arguments mean
            valid = None
        try:
            if valid or (valid is None and v.is_valid(args)):
                return None
            err = best_match(v.iter_errors(args))
        except Exception as e:  # a schema jsonschema cannot apply: refuse rather than let anything through
            return f"the arguments could not be validated ({type(e).__name__})"
        if err is None:
            return None
        path = "/".join(str(p) for p in err.absolute_path)
        msg = err.message if len(err.message) <= 200 else err.message[:200] + "..."
        return f"{path}: {msg}" if path else msg

    def valid(self, args: dict[str, Any]) -> bool:
        """`first_error(args) is None`, without wording the error."""
        v = self.validator()
        if v is None:
            return True
        if self._fast is not None:
            try:
                return self._fast(args)
            except Exception:  # left to jsonschema
                pass
        try:
            return bool(v.is_valid(args))
        except Exception:
            return False

    def conform(self, args: dict[str, Any]) -> tuple[dict[str, Any], list[str], str | None]:
        """(arguments, coercions made, error). error is None when the result validates; it is worded only when
        no coercion made the arguments valid."""
        if self.valid(args):
            return args, [], None
        root = self.parameters if isinstance(self.parameters, dict) else {}
        changes: list[str] = []
        coerced = _coerce(root, root, args, "", changes, 0, self._nodes)
        if changes and self.valid(coerced):
            return coerced, changes, None
        return args, [], self.first_error(args)

    def type_text_values(self, args: dict[str, Any]) -> dict[str, Any]:
        """Values of XML-style formats arrive as text; give them the declared types (native, not a repair)."""
        root = self.parameters if isinstance(self.parameters, dict) else {}
        props = json_object(root.get("properties"), {})
        out: dict[str, Any] = {}
        for key, value in args.items():
            if not isinstance(value, str):
                out[key] = value
                continue
            sub = _deref(root, props.get(key)) if isinstance(props, dict) else None
            out[key] = _type_text(root, sub, value)
        return out


def _without(schema: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    """A copy of `schema` without the node at `path`."""
    if len(path) == 1:
        if isinstance(schema, dict):
            return {k: v for k, v in schema.items() if k != path[0]}
        return schema
    head = path[0]
    if isinstance(schema, dict) and head in schema:
        child = schema[head]
        if isinstance(child, dict):
            return {**schema, head: _without(child, path[1:])}
        if isinstance(child, list) and isinstance(path[1], int) and path[1] < len(child):
            items = list(child)
            if len(path) == 2:
                del items[path[1]]
            elif isinstance(items[path[1]], dict):
                items[path[1]] = _without(items[path[1]], path[2:])
            return {**schema, head: items}
    return schema


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


def _checker(root: dict[str, Any], schema: dict[str, Any]) -> Callable[[Any], bool]:
    """Whether a value is valid against `schema` (a node of `root`, whose definitions it may refer to), compiled
    once: a tool's branch is checked on every coercion of a call to it."""
    if not isinstance(schema, dict):  # (a reference to something that is no schema object: nothing fits it)
        return _never
    sub = dict(schema)
    for key in ("$defs", "definitions"):
        if key in root and key not in sub:
            sub[key] = root[key]
    try:
        validator = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)(sub)
    except Exception:
        return _never

    def check(value: Any) -> bool:
        try:
            return bool(validator.is_valid(value))
        except Exception:
            return False
    return check


def _never(value: Any) -> bool:
    return False


def _branch_valid(root: dict[str, Any], node: _Node, i: int, value: Any) -> bool:
    """Whether `value` is valid against branch `i` of `node` (an object), its check compiled when first asked."""
    checks = node.checks
    check = checks[i]
    if check is None:
        assert node.branches is not None
        check = checks[i] = _checker(root, _deref(root, node.branches[i]) or {})
    return check(value)


_LABEL_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps(value, ensure_ascii=False)'s, built once


class _Node(NamedTuple):
    """What `_coerce` reads of one schema node, read once: the node (`source`, kept so that its id, the key it is
    cached under, stays its own), what it refers to (`schema`: None when that is not an object), the first of its
    anyOf / oneOf lists that holds branches, its type names, properties, additionalProperties and items."""

    source: Any
    schema: dict[str, Any] | None
    branches: list[Any] | None
    types: list[str]
    props: dict[str, Any]
    extra: dict[str, Any] | None
    items: dict[str, Any] | None
    keeps_text: bool  # a string given for it is kept as it is (no coercion: it has no branches, allows strings)
    checks: list[Callable[[Any], bool] | None]  # each branch's validity check, compiled when first asked
    wraps: bool  # a lone value given for it may become a list of one (see `_one_item`)
    item_check: list[Callable[[Any], bool] | None]  # its items' validity check, compiled when first asked


def _node(root: dict[str, Any], schema: Any) -> _Node:
    target = _deref(root, schema)
    if not isinstance(target, dict):
        return _Node(schema, None, None, [], {}, None, None, True, [], False, [])
    branches = next((b for key in ("anyOf", "oneOf") if isinstance(b := target.get(key), list) and b), None)
    extra, items, types = target.get("additionalProperties"), target.get("items"), _types(target)
    wraps = [t for t in types if t != "null"] == ["array"] and branches is None and "prefixItems" not in target \
        and (items is None or isinstance(items, dict))  # (items given as a list are a tuple's: no lone value fits)
    return _Node(schema, target, branches, types, json_object(target.get("properties"), {}),
                 extra if isinstance(extra, dict) else None, items if isinstance(items, dict) else None,
                 branches is None and (not types or "string" in types), [None] * len(branches or ()), wraps, [None])


Nodes = dict[int, _Node]  # one tool's schema nodes as `_coerce` read them, by id (see `ToolSchema.conform`)


def _node_of(root: dict[str, Any], schema: Any, nodes: Nodes | None) -> _Node:
    if nodes is None:
        return _node(root, schema)
    found = nodes.get(id(schema))
    if found is None or found.source is not schema:
        found = nodes[id(schema)] = _node(root, schema)
    return found


def _coerce(root: dict[str, Any], schema: Any, value: Any, path: str, changes: list[str], depth: int,
            nodes: Nodes | None = None, wrap: bool = True) -> Any:
    """`value` with what `schema` (a node of `root`) unambiguously gives another type converted, each conversion
    added to `changes`. `nodes`: the nodes of `root` already read (kept by its tool: read once, not per call)."""
    node = _node_of(root, schema, nodes)
    schema = node.schema
    if schema is None or depth > _MAX_DEPTH:
        return value
    branches = node.branches
    if branches is not None:
        if any(_branch_valid(root, node, i, value) for i, b in enumerate(branches) if isinstance(b, dict)):
            return value
        fits = []
        for i, b in enumerate(branches):
            trial: list[str] = []
            v = _coerce(root, b, value, path, trial, depth + 1, nodes, False)
            if trial and isinstance(b, dict) and _branch_valid(root, node, i, v):
                fits.append((v, trial))
        if not fits and wrap and not isinstance(value, list):  # no branch takes it as it is or converted: a list
            for i, b in enumerate(branches):  # branch may take it as its one item (see `_one_item`)
                bn = _node_of(root, b, nodes)
                one = _one_item(root, bn, value, path, depth + 1, nodes) if bn.wraps else None
                if one is not None and _branch_valid(root, node, i, [one[0]]):
                    fits.append(([one[0]], [_wrapped(path, value), *one[1]]))
        if len(fits) == 1:
            changes.extend(fits[0][1])
            return fits[0][0]
        return value
    types = node.types
    if isinstance(value, str) and types and "string" not in types:
        v = _convert_str(value, types)
        if not isinstance(v, _Nope):
            changes.append(f"{path or 'arguments'}: {_LABEL_ENCODER.encode(value)[:60]} -> {types[0]}")
            value = v
    elif (isinstance(value, (int, float)) and not isinstance(value, bool) and types == ["string"]):
        changes.append(f"{path or 'arguments'}: {value!r} -> string")
        return value.text if isinstance(value, WrittenFloat) else json.dumps(value)
    if wrap and node.wraps and not isinstance(value, list):
        one = _one_item(root, node, value, path, depth, nodes)
        if one is not None:
            changes.append(_wrapped(path, value))
            changes.extend(one[1])
            return [one[0]]
    if isinstance(value, dict):
        props, extra = node.props, node.extra
        out = {}
        for k, v in value.items():
            sub = props.get(k) if k in props else extra
            if not sub or (type(v) is str and _node_of(root, sub, nodes).keeps_text):  # (what `_coerce` gives it)
                out[k] = v
            else:
                out[k] = _coerce(root, sub, v, f"{path}/{k}" if path else k, changes, depth + 1, nodes, wrap)
        return out
    if isinstance(value, list):
        items = node.items
        if items is not None:
            inner = wrap and not _node_of(root, items, nodes).wraps  # (a list written: its items are no lone values
            # to make lists of, `[1, 2]` for a list of points; a list within an item may be)
            return [_coerce(root, items, v, f"{path}/{i}", changes, depth + 1, nodes, inner)
                    for i, v in enumerate(value)]
    return value


def _wrapped(path: str, value: Any) -> str:
    return f"{path or 'arguments'}: {_LABEL_ENCODER.encode(value)[:60]} -> array (one item)"


def _one_item(root: dict[str, Any], node: _Node, value: Any, path: str, depth: int,
              nodes: Nodes | None) -> tuple[Any, list[str]] | None:
    """`value`, given where `node` (typed array, or array or null) asks for a list, as that list's one item, with the
    item's own coercions (`"5"` for integer items is 5): what Home Assistant's validator (`cv.ensure_list`) makes
    of a lone value. None where that would guess: null or a word for it, a blank string, a string written as a
    literal (a list written badly, an object, a tuple, a quoted string: an XML format's `"x"`, whose quotes may or may
    not be the value's, a markdown list) or holding a separator (`light, switch`, lines: a list written as text), an
    object where the items do not declare objects, items that are lists themselves (which level the value was meant
    for is a guess: `[1, 2]` for a list of points), or an item the items refuse. The item is coerced with no wrap
    of its own, and a wrap is looked for only where nothing takes the value otherwise (`_coerce`'s `wrap`): within
    an anyOf's branches only once none takes it as it is or converted, never inside a wrapped item or a list's
    items, so that its cost stays that of reading the schema once (a schema whose array branches refer to
    themselves had made it exponential)."""
    if value is None or (isinstance(value, str) and (not value.strip() or value.lstrip().startswith(_LITERAL_OPENERS)
                                                     or _LIST_SEPARATORS.search(value) is not None
                                                     or value.strip().lower() in _NULL_WORDS)):
        return None
    items = node.items
    if items is None:
        return None if isinstance(value, dict) else (value, [])
    if isinstance(value, dict) and "object" not in _node_of(root, items, nodes).types:
        return None
    trial: list[str] = []
    if "array" in _node_of(root, items, nodes).types:  # a list of lists: which level a value was meant for is a guess
        return None
    item = _coerce(root, items, value, f"{path}/0" if path else "0", trial, depth + 1, nodes, False)  # (no wrap in it)
    check = node.item_check[0]
    if check is None:
        check = node.item_check[0] = _checker(root, _deref(root, items))
    return (item, trial) if check(item) else None
