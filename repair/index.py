"""The declared tools of one request: names, schemas and cached validators, built once per tools list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from repair.names import NameResolver
from repair.schema import ToolSchema
from repair.types import json_object


def _tool_entry(tool: Any) -> tuple[str, dict[str, Any] | None] | None:
    if not isinstance(tool, dict):
        return None
    fn = json_object(tool.get("function"), tool)
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        return None
    params = fn.get("parameters")
    if params is None:
        params = fn.get("input_schema")
    return name, params if isinstance(params, dict) else None


class ToolIndex:
    """Declared tools keyed by name; resolves the names models write and holds one validator per tool."""

    def __init__(self, tools: Iterable[Any] | None = None) -> None:
        self.tools: dict[str, ToolSchema] = {}
        for tool in tools or ():
            entry = _tool_entry(tool)
            if entry is not None and entry[0] not in self.tools:
                self.tools[entry[0]] = ToolSchema(entry[0], entry[1])
        self._names = NameResolver(self.tools)
        self.memo: dict[str, Any] = {}  # what other modules derive from this index once (e.g. core's finders)

    @classmethod
    def of(cls, tools: ToolIndex | Iterable[Any] | None) -> ToolIndex:
        if isinstance(tools, ToolIndex):
            return tools
        return cls(tools if isinstance(tools, (list, tuple)) else None)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def resolve(self, name: Any) -> str | None:
        if not isinstance(name, str) or not self.tools:
            return None
        return self._names.resolve(name)

    def get(self, name: str) -> ToolSchema:
        return self.tools[name]
