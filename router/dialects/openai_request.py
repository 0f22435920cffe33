"""The fields of an OpenAI request that the router itself reads, checked before any upstream is called.

Everything else passes through untouched for the upstream to judge; these drive routing, streaming, tool-call
repair and the Anthropic translation, so a wrong type is the client's 400 naming the field, never an upstream
failure retried into a 502.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, NoReturn

from engines.wire import invalid_type_message

from .common import check_type, invalid

_MESSAGE_CONTENT = (str, list)


def check_request(endpoint: str, body: dict[str, Any], tools_checked: bool = False, messages_checked: int = 0,
                  ) -> None:
    """Raise a 400 (`param` names the field) when a field the router reads has the wrong shape. `tools_checked`:
    `body["tools"]` is a list that passed this check before (a known list, resent as it was); `messages_checked`:
    how many of `body["messages"]`' first messages did (a known history's, see `KnownHistory.prefix`)."""
    if endpoint != "embeddings":
        check_type(body, "stream", bool, "a boolean")
        options = check_type(body, "stream_options", dict, "an object")
        if options is not None:
            _check_field(options, "include_usage", bool, "a boolean", "stream_options.include_usage")
    if endpoint == "chat":
        _check_chat(body, tools_checked, messages_checked)


def _check_chat(body: dict[str, Any], tools_checked: bool, messages_checked: int) -> None:
    messages = check_type(body, "messages", list, "an array of message objects", required=True)
    # the common shape at the cost of a few lookups; the message names the field
    for i, m in enumerate(messages[messages_checked:] if messages_checked else messages, messages_checked):
        if not isinstance(m, dict):
            _wrong_type(f"messages[{i}]", "an object", m)
        role, content, calls = m.get("role"), m.get("content"), m.get("tool_calls")
        if not (isinstance(role, str) and role and (content is None or isinstance(content, _MESSAGE_CONTENT))
                and (calls is None or (isinstance(calls, list) and all(map(isinstance, calls, repeat(dict)))))):
            _message_error(f"messages[{i}]", role, content)
    tools = check_type(body, "tools", list, "an array of tool objects")
    if tools and not tools_checked:
        for i, t in enumerate(tools):
            if not isinstance(t, dict):
                _tool_error(f"tools[{i}]", t, None)
            fn = t.get("function")
            if fn is not None and not (isinstance(fn, dict) and isinstance(fn.get("name"), str)):
                _tool_error(f"tools[{i}]", t, fn)
    check_type(body, "tool_choice", (str, dict), "a string or an object")
    check_type(body, "parallel_tool_calls", bool, "a boolean")


def _message_error(where: str, role: object, content: object) -> NoReturn:
    if not isinstance(role, str) or not role:
        raise invalid(f"'{where}.role' must be a non-empty string.", f"{where}.role", "invalid_type")
    if content is not None and not isinstance(content, _MESSAGE_CONTENT):
        _wrong_type(f"{where}.content", "one of a string or array of objects", content)
    raise invalid(f"'{where}.tool_calls' must be an array of objects.", f"{where}.tool_calls", "invalid_type")


def _tool_error(where: str, tool: object, fn: object) -> NoReturn:
    if not isinstance(tool, dict):
        _wrong_type(where, "an object", tool)
    if not isinstance(fn, dict):
        raise invalid(f"'{where}.function' must be an object.", f"{where}.function", "invalid_type")
    raise invalid(f"'{where}.function.name' must be a string.", f"{where}.function.name", "invalid_type")


def _check_field(obj: dict[str, Any], name: str, kind: type, what: str, param: str) -> None:
    value = obj.get(name)
    if value is not None and (isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)):
        _wrong_type(param, what, value)


def _wrong_type(param: str, expected: str, value: object) -> NoReturn:
    raise invalid(invalid_type_message(param, expected, value), param, "invalid_type")
