"""Coercion reads each schema node once per tool (`ToolSchema._nodes`): the same arguments and the same coercions
as reading the schema afresh, the nodes of one tool only, never more than its schema holds."""

from __future__ import annotations

from typing import Any

import pytest

from repair.index import ToolIndex
from repair.schema import ToolSchema, _coerce

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"n": {"type": "integer"}},
    "properties": {
        "cmd": {"type": "string"},
        "timeout": {"type": "integer", "minimum": 1},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "ref": {"$ref": "#/$defs/n"},
        "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        "label": {"type": ["string", "null"]},
        "name": {"type": "string", "enum": ["a", "b"]},
        "ids": {"type": "array", "items": {"type": "integer"}},
        "opts": {"type": "object", "properties": {"depth": {"type": "integer"}},
                 "additionalProperties": {"type": "number"}},
        "any": {},
    },
    "additionalProperties": {"type": "boolean"},
}

CASES: list[dict[str, Any]] = [
    {"cmd": "ls", "timeout": "120000"},
    {"cmd": 5, "timeout": 3, "ratio": "1.5", "flag": "true"},
    {"ref": "7", "either": "12", "label": "x", "name": "a"},
    {"ids": ["1", 2, "x"], "opts": {"depth": "3", "extra": "2.5", "bad": "no"}},
    {"any": "1", "unknown": "false", "other": "text"},
    {"cmd": 1.5, "label": 3, "name": 2},
]


def _fresh(args: dict[str, Any]) -> tuple[Any, list[str]]:
    changes: list[str] = []
    return _coerce(SCHEMA, SCHEMA, args, "", changes, 0), changes


@pytest.mark.parametrize("args", CASES)
def test_read_once_gives_what_reading_afresh_gives(args: dict[str, Any]) -> None:
    tool = ToolSchema("t", SCHEMA)
    tool.validator()
    root = tool.parameters
    assert root == SCHEMA
    for _ in range(2):  # the second time from the nodes kept
        changes: list[str] = []
        assert _coerce(root, root, args, "", changes, 0, tool._nodes) == _fresh(args)[0]
        assert changes == _fresh(args)[1]


def test_the_nodes_kept_are_the_tools_own_and_bounded_by_its_schema() -> None:
    tools = [{"type": "function", "function": {"name": "t", "parameters": SCHEMA}}]
    first, second = ToolIndex(tools).get("t"), ToolIndex(tools).get("t")
    for _ in range(3):
        for args in CASES:
            first.conform(args)
    assert first._nodes and not second._nodes  # another index's tool reads its own schema
    nodes = _schema_nodes(first.parameters)
    assert len(first._nodes) <= len(nodes)
    assert all(n.source is nodes[key] for key, n in first._nodes.items())
    second.conform(CASES[0])
    assert not set(first._nodes) & set(second._nodes)


def _schema_nodes(schema: Any) -> dict[int, Any]:
    found: dict[int, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, (dict, list)):
            found[id(node)] = node
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)

    walk(schema)
    return found


def test_an_optional_parameter_s_branches_are_compiled_once_per_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    """`anyOf: [{integer}, {null}]` (how pydantic, and so Python MCP servers, write an optional parameter): each
    coercion of a call checked every branch with a jsonschema validator built for it then (~35 us each); a tool's
    branch checks are built once, and give what they gave."""
    import repair.schema as schema_module
    from repair import repair_message

    built: list[object] = []
    real = schema_module._checker

    def counted(root: dict[str, Any], schema: dict[str, Any]) -> Any:
        built.append(schema)
        return real(root, schema)

    monkeypatch.setattr(schema_module, "_checker", counted)
    optional = {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}, "limit": optional, "offset": optional},
        "required": ["path"]}}}]
    index = ToolIndex(tools)
    text = '<tool_call>{"name": "read_file", "arguments": {"path": "a.py", "limit": "50", "offset": null}}</tool_call>'
    for _ in range(5):
        r = repair_message(text, index)
        assert r.tool_calls[0]["function"]["arguments"] == '{"path": "a.py", "limit": 50, "offset": null}'
        assert [x.kind for x in r.repairs] == ["coerced_type"]
    assert len(built) <= 4, len(built)  # (two nodes of one schema object at most: each branch once)
