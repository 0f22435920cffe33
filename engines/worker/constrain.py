"""Grammars for constrained decoding: tool calls in the model's own wire format, and JSON replies.

Built with llguidance (Lark-like grammars with embedded JSON Schemas, compiled against the model's tokenizer).
`plan_chat` turns a chat request into a `Plan`: which grammar (if any) the reply must follow, and why not when
it does not. Grammars only describe text; `engines.worker.matching` runs them during decoding.

- tool_choice "required" / a named function: the whole reply is one call (or several, when
  `parallel_tool_calls` allows) to a declared tool, arguments valid under its JSON Schema.
- tool_choice "auto": prose is free; once the model emits the family's call opener (one token), the rest of the
  call follows the grammar (a lazy trigger), after which prose is free again.
- response_format json_schema / json_object: the whole reply is one JSON value.

Tool-call wire formats with a grammar here: hermes (`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`)
and llama3 (`{"name": ..., "parameters": {...}}`). Other families decode unconstrained and rely on repair.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

# JSON as the chat templates render it: ", " and ": " separators and no other whitespace, so a model cannot
# wander off into endless blank space.
JSON_STYLE: dict[str, Any] = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ",
                              "lenient": True}
MAX_PARALLEL_CALLS = 8
SUPPORTED_FAMILIES = ("hermes", "llama3")


@dataclass(frozen=True)
class CallFormat:
    """How one family writes a call: opener, lead, the JSON object, tail, closer; calls joined by `separator`.
    Opener and closer are markers: a tokenizer may have them as single special tokens."""

    opener: str  # "" when calls have no opener (then there is no lazy trigger)
    lead: str
    name_key: str
    args_key: str
    tail: str
    closer: str
    separator: str


FORMATS: dict[str, CallFormat] = {
    "hermes": CallFormat("<tool_call>", "\n", "name", "arguments", "\n", "</tool_call>", "\n"),
    "llama3": CallFormat("", "", "name", "parameters", "", "", "; "),
}


@dataclass(frozen=True)
class Plan:
    """What constrains one reply. `grammar` None: unconstrained, and `reason` says why."""

    kind: str  # "tools" | "tools_lazy" | "json" | "none"
    grammar: str | None = None
    trigger: str | None = None  # text of the opener that starts the grammar (lazy plans)
    reason: str = ""

    @property
    def label(self) -> str:
        """The value of the `x-agentgate-constrained` response header."""
        return self.kind if self.grammar is not None else (self.reason or "none")


NONE = Plan("none", reason="none")


def _lit(text: str) -> str:
    return json.dumps(text)


def _seq(*items: str) -> str:
    return " ".join(i for i in items if i)


def _marker(text: str, special: frozenset[str]) -> str:
    """A marker as a grammar item: the special token by name when the tokenizer has it as one, else its text."""
    if not text:
        return ""
    return text if text in special else _lit(text)


def _text(text: str) -> str:
    return _lit(text) if text else ""


# Numbers without bounds get the range every JSON parser reads exactly, so that digits cannot run on forever.
SAFE_INTEGER = 2**53 - 1
SAFE_NUMBER = 1e15


def strict_schema(schema: Any) -> dict[str, Any]:
    """A copy of a tool's parameter schema for generation, tightened so that output under it is valid under the
    declared one and finite: objects that do not say otherwise get no extra properties (a required name they do
    not list stays allowed, with any value), numbers without bounds get the exactly-representable range; plus the
    JSON style."""
    if not isinstance(schema, dict) or not schema:
        schema = {"type": "object", "properties": {}}
    out: dict[str, Any] = copy.deepcopy(schema)
    _close_objects(out, 0)
    out["x-guidance"] = dict(JSON_STYLE)
    return out


def _types(node: dict[str, Any]) -> set[str]:
    """The JSON types a schema names: one, or several in a list (`["number", "null"]`, OpenAI's nullable)."""
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _close_objects(node: Any, depth: int) -> None:
    if depth > 64:
        return
    if isinstance(node, dict):
        kinds = _types(node)
        if ("object" in kinds or "properties" in node) and "additionalProperties" not in node \
                and "patternProperties" not in node:
            node["additionalProperties"] = False
            _allow_required(node)
        if kinds & {"integer", "number"} and not any(k in node for k in _BOUND_KEYS):
            bound = SAFE_NUMBER if "number" in kinds else SAFE_INTEGER
            node["minimum"], node["maximum"] = -bound, bound
        for key, value in node.items():
            if key in ("enum", "const", "default", "examples"):
                continue
            _close_objects(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _close_objects(item, depth + 1)


def _allow_required(node: dict[str, Any]) -> None:
    """A closed object still takes the names its `required` lists but `properties` does not: the declared schema
    allows them (as extra properties, any value), and closed without them no object would be valid, so the
    grammar would not compile. Their value stays any JSON; a number there gets the float range."""
    required = node.get("required")
    props = node.get("properties", {})
    if not isinstance(required, list) or not isinstance(props, dict):
        return
    missing = [name for name in required if isinstance(name, str) and name not in props]
    if missing:
        node["properties"] = {**props, **{name: {"minimum": -SAFE_NUMBER, "maximum": SAFE_NUMBER}
                                          for name in missing}}


def _tool_rules(family: str, tools: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """Lark rules `fn_i` for each tool's JSON object, and the rule names."""
    fmt = FORMATS[family]
    rules: list[str] = []
    names: list[str] = []
    for i, tool in enumerate(tools):
        fn = tool["function"]
        head = "{" + f"{json.dumps(fmt.name_key)}: {json.dumps(fn['name'])}, {json.dumps(fmt.args_key)}: "
        schema = json.dumps(strict_schema(fn.get("parameters")), ensure_ascii=False, separators=(",", ":"))
        rules.append(f"fn_{i}: {_lit(head)} %json {schema} {_lit('}')}")
        names.append(f"fn_{i}")
    return "\n".join(rules), names


def tool_grammar(family: str, tools: list[dict[str, Any]], *, parallel: bool, lazy: bool,
                 think: tuple[str, str] | None = None, special: frozenset[str] = frozenset()) -> str:
    """Calls to `tools` in `family`'s format. `lazy`: the grammar of the text after the opener (one call).
    `think`: the reply starts inside an open reasoning block, which runs free until its close marker.
    `special`: the markers that are single special tokens of the tokenizer (named as tokens in the grammar)."""
    fmt = FORMATS[family]
    rules, names = _tool_rules(family, tools)
    rest = _seq(_text(fmt.lead), "call_body", _text(fmt.tail), _marker(fmt.closer, special))
    lines = ["%llguidance {}"]
    if lazy:
        lines.append(f"start: {rest}")
    else:
        more = f" ({_lit(fmt.separator)} call){{0,{MAX_PARALLEL_CALLS - 1}}}" if parallel else ""
        prefix = ""
        if think is not None:
            lazy_attr = "" if think[1] in special else "[lazy]"  # text up to the first close marker
            lines.append(f"think_rest{lazy_attr}: THINK_TEXT {_marker(think[1], special)}")
            lines.append("THINK_TEXT: /(.|\\n)*/")
            prefix = 'think_rest "\\n"{0,2} '
        lines.append(f"start: {prefix}call{more}")
        lines.append(f"call: {_seq(_marker(fmt.opener, special), rest)}")
    lines.append(f"call_body: {' | '.join(names)}")
    lines.append(rules)
    return "\n".join(lines) + "\n"


def json_grammar(schema: dict[str, Any] | None) -> str:
    """One JSON value: under `schema`, or any JSON object when None (response_format json_object)."""
    base: dict[str, Any] = copy.deepcopy(schema) if isinstance(schema, dict) else {"type": "object"}
    if isinstance(schema, dict):
        _close_objects(base, 0)
    base["x-guidance"] = {**JSON_STYLE}
    text = json.dumps(base, ensure_ascii=False, separators=(",", ":"))
    return f"%llguidance {{}}\nstart: %json {text}\n"


def _selected_tools(tools: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        return [t for t in tools if t["function"]["name"] == name]
    return tools


def plan_chat(*, family: str, tools: list[dict[str, Any]] | None, tool_choice: Any, parallel_tool_calls: bool,
              response_format: dict[str, Any] | None, reasoning_open: bool,
              think: tuple[str, str] | None, special: frozenset[str] = frozenset()) -> Plan:
    """The constraint for one chat request (grammar text only; compiling it happens elsewhere)."""
    wants_call = tool_choice == "required" or isinstance(tool_choice, dict)
    if tools and tool_choice != "none":
        if family not in FORMATS:
            return Plan("none", reason="unsupported_format")
        chosen = _selected_tools(tools, tool_choice)
        fmt = FORMATS[family]
        if wants_call:
            parallel = parallel_tool_calls and not isinstance(tool_choice, dict)
            grammar = tool_grammar(family, chosen, parallel=parallel, lazy=False,
                                   think=think if reasoning_open else None, special=special)
            return Plan("tools", grammar)
        if not fmt.opener:
            return Plan("none", reason="no_trigger")
        return Plan("tools_lazy", tool_grammar(family, chosen, parallel=False, lazy=True, special=special),
                    trigger=fmt.opener)
    if response_format is not None:
        kind = response_format.get("type")
        if kind == "json_object":
            return Plan("json", json_grammar(None))
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            return Plan("json", json_grammar(schema if isinstance(schema, dict) else None))
    return NONE
