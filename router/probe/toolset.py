"""The probe's tools: OpenAI declarations and a local, deterministic workspace that executes them.

Calculator, key-value store, an in-memory file system and a clock whose time is fixed by the seed and moves
one minute per call. Executing the same calls from the same seed always gives the same results.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from .calc import CalcError, evaluate


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False},
    }}


_STR = {"type": "string"}
TOOLS: tuple[dict[str, Any], ...] = (
    _tool("calculator", "Evaluate an arithmetic expression (numbers, + - * / // % **, parentheses, "
          "sqrt/abs/round/min/max).", {"expression": {**_STR, "description": "e.g. (17 + 4) * 3"}},
          ["expression"]),
    _tool("kv_set", "Store a string value under a key in the key-value store.",
          {"key": {**_STR, "description": "the key"}, "value": {**_STR, "description": "the value"}},
          ["key", "value"]),
    _tool("kv_get", "Read the value stored under a key.", {"key": {**_STR, "description": "the key"}},
          ["key"]),
    _tool("kv_delete", "Delete a key from the key-value store.", {"key": {**_STR, "description": "the key"}},
          ["key"]),
    _tool("read_file", "Read a text file of the workspace.",
          {"path": {**_STR, "description": "relative path"}}, ["path"]),
    _tool("write_file", "Create or overwrite a text file of the workspace.",
          {"path": {**_STR, "description": "relative path"}, "content": {**_STR, "description": "full text"}},
          ["path", "content"]),
    _tool("search_files", "Search every file of the workspace for a text; returns matching lines.",
          {"query": {**_STR, "description": "text to look for (case-insensitive)"},
           "max_results": {"type": "integer", "minimum": 1, "maximum": 50, "description": "default 10"}},
          ["query"]),
    _tool("get_time", "The current date and time.",
          {"utc_offset_hours": {"type": "integer", "minimum": -12, "maximum": 14,
                                "description": "time zone offset from UTC in hours (default 0)"}},
          []),
)
TOOL_NAMES: tuple[str, ...] = tuple(t["function"]["name"] for t in TOOLS)
SCHEMAS: dict[str, dict[str, Any]] = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

INITIAL_FILES: dict[str, str] = {
    "README.md": (
        "# inventory-service\n\n"
        "A small service that tracks warehouse stock.\n"
        "Run `make test` before every release.\n"
    ),
    "src/app.py": (
        "from inventory import Store\n\n"
        "store = Store()\n\n\n"
        "def restock(item: str, count: int) -> int:\n"
        "    # negative counts are rejected by the store\n"
        "    return store.add(item, count)\n"
    ),
    "src/inventory.py": (
        "class Store:\n"
        "    def __init__(self):\n"
        "        self.items = {}\n\n"
        "    def add(self, item, count):\n"
        "        self.items[item] = self.items.get(item, 0) + count\n"
        "        return self.items[item]\n"
    ),
    "notes/backlog.md": (
        "- add a release checklist\n"
        "- fix the flaky restock test\n"
        "- ask ops about the warehouse region\n"
    ),
    "config/settings.toml": '[service]\nregion = "eu-west"\nretries = 3\nrelease = "2.4.1"\n',
}


def epoch_for_seed(seed: int) -> dt.datetime:
    """The clock's first reading for a seed: a fixed instant in 2025."""
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    return start + dt.timedelta(minutes=(seed * 7919) % (365 * 24 * 60))


@dataclass
class Workspace:
    """State the tools act on; one per probe conversation."""

    seed: int = 0
    kv: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=lambda: dict(INITIAL_FILES))
    clock_calls: int = 0

    def execute(self, name: str, args: dict[str, Any]) -> str:
        """Run one call whose arguments already passed the schema; the tool result as a JSON string."""
        args = {k: int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v
                for k, v in args.items()}  # 10.0 where an integer goes passes the schema
        try:
            result = getattr(self, "_" + name)(**args)
        except CalcError as exc:
            result = {"error": f"calculation failed: {exc}"}
        except Exception as exc:  # whatever a schema-valid call makes of a tool, the model gets an error result
            result = {"error": f"{name} failed: {type(exc).__name__}: {exc}"[:300]}
        return json.dumps(result, ensure_ascii=False, sort_keys=True)

    def _calculator(self, expression: str) -> dict[str, Any]:
        return {"expression": expression, "result": evaluate(expression)}

    def _kv_set(self, key: str, value: str) -> dict[str, Any]:
        self.kv[key] = value
        return {"ok": True, "key": key}

    def _kv_get(self, key: str) -> dict[str, Any]:
        if key not in self.kv:
            return {"error": f"no such key: {key}"}
        return {"key": key, "value": self.kv[key]}

    def _kv_delete(self, key: str) -> dict[str, Any]:
        existed = self.kv.pop(key, None) is not None
        return {"ok": True, "key": key, "deleted": existed}

    def _read_file(self, path: str) -> dict[str, Any]:
        path = path.removeprefix("./")
        if path not in self.files:
            return {"error": f"no such file: {path}"}
        return {"path": path, "content": self.files[path]}

    def _write_file(self, path: str, content: str) -> dict[str, Any]:
        self.files[path] = content
        return {"ok": True, "path": path, "bytes": len(content.encode())}

    def _search_files(self, query: str, max_results: int = 10) -> dict[str, Any]:
        matches = []
        needle = query.lower()
        for path in sorted(self.files):
            for number, line in enumerate(self.files[path].splitlines(), 1):
                if needle in line.lower():
                    matches.append({"path": path, "line": number, "text": line.strip()})
        return {"query": query, "matches": matches[:max_results], "total": len(matches)}

    def _get_time(self, utc_offset_hours: int = 0) -> dict[str, Any]:
        now = epoch_for_seed(self.seed) + dt.timedelta(minutes=self.clock_calls)
        self.clock_calls += 1
        local = now.astimezone(dt.timezone(dt.timedelta(hours=utc_offset_hours)))
        return {"time": local.isoformat(), "utc_offset_hours": utc_offset_hours}
