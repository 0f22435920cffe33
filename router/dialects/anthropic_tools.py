"""Anthropic's versioned tool types as the chat form sees them.

Client tools (`bash_*`, `text_editor_*`, `computer_*`, `memory_*`) run on the client: they become function tools
with the input schemas Anthropic documents for them, under the name the client declared (calls come back under
that name). Server tools (`web_search_*`, `web_fetch_*`, `code_execution_*`, `tool_search_tool_*`, MCP toolsets)
run on Anthropic's side: no backend behind the chat form can run them, so they are dropped and reported.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_INT = {"type": "integer"}
_POINT = {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2,
          "description": "[x, y] pixel coordinates on the screen."}

_BASH = {"type": "object", "properties": {
    "command": {"type": "string", "description": "The bash command to run."},
    "restart": {"type": "boolean", "description": "Restart the bash session instead of running a command."},
}}
_EDITOR_COMMANDS = ["view", "create", "str_replace", "insert", "undo_edit"]
_EDITOR = {"type": "object", "required": ["command", "path"], "properties": {
    "command": {"type": "string", "enum": _EDITOR_COMMANDS, "description": "The operation to perform."},
    "path": {"type": "string", "description": "Absolute path to the file or directory."},
    "file_text": {"type": "string", "description": "`create`: the content of the new file."},
    "old_str": {"type": "string", "description": "`str_replace`: the exact text to replace (must be unique)."},
    "new_str": {"type": "string", "description": "`str_replace`: the replacement; `insert`: the text to insert."},
    "insert_line": {"type": "integer", "description": "`insert`: the line after which to insert (0 = start)."},
    "insert_text": {"type": "string", "description": "`insert`: the text to insert."},
    "view_range": {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2,
                   "description": "`view`: [start, end] lines, 1-based; end -1 means to the end of the file."},
}}
_COMPUTER_ACTIONS = ["key", "hold_key", "type", "cursor_position", "mouse_move", "left_mouse_down", "left_mouse_up",
                     "left_click", "left_click_drag", "right_click", "middle_click", "double_click", "triple_click",
                     "scroll", "wait", "screenshot", "zoom"]
_COMPUTER = {"type": "object", "required": ["action"], "properties": {
    "action": {"type": "string", "enum": _COMPUTER_ACTIONS},
    "coordinate": _POINT,
    "start_coordinate": _POINT,
    "text": {"type": "string", "description": "`type`: the text; `key`/`hold_key`: the key combination."},
    "scroll_direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
    "scroll_amount": _INT,
    "duration": {"type": "number", "description": "`hold_key`/`wait`: seconds."},
    "region": {"type": "array", "items": _INT, "minItems": 4, "maxItems": 4,
               "description": "`zoom`: [x0, y0, x1, y1]."},
}}
_MEMORY = {"type": "object", "required": ["command"], "properties": {
    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "delete", "rename"]},
    "path": _STR, "file_text": _STR, "old_str": _STR, "new_str": _STR, "insert_line": _INT, "insert_text": _STR,
    "old_path": _STR, "new_path": _STR,
    "view_range": {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2},
}}

_CLIENT: dict[str, tuple[dict[str, Any], str]] = {
    "bash_": (_BASH, "Run a command in a persistent bash shell."),
    "text_editor_": (_EDITOR, "View, create and edit text files: view, create, str_replace, insert."),
    "computer_": (_COMPUTER, "Control the computer's screen, mouse and keyboard."),
    "memory_": (_MEMORY, "Read and write files in the /memories directory."),
}


def client_function(tool: dict[str, Any]) -> dict[str, Any] | None:
    """The chat function for an Anthropic client tool type, or None when the type is not one."""
    kind = str(tool.get("type"))
    for prefix, (schema, desc) in _CLIENT.items():
        if kind.startswith(prefix):
            name = tool.get("name")
            fn: dict[str, Any] = {"name": name if isinstance(name, str) and name else prefix.rstrip("_"),
                                  "description": desc, "parameters": schema}
            if prefix == "computer_" and isinstance(tool.get("display_width_px"), int):
                fn["description"] += f" The screen is {tool['display_width_px']}x{tool.get('display_height_px')}" \
                    " pixels."
            return {"type": "function", "function": fn}
    return None

