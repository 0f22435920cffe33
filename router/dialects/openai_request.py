"""The fields of an OpenAI request that the router itself reads, checked before any upstream is called.

Everything else passes through untouched for the upstream to judge; these drive routing, streaming, tool-call
repair and the Anthropic translation, so a wrong type is the client's 400 naming the field, never an upstream
failure retried into a 502.
"""

from __future__ import annotations

from typing import Any

from .common import check_type, invalid

_MESSAGE_CONTENT = (str, list)


def check_request(endpoint: str, body: dict[str, Any]) -> None:
    """Raise a 400 (`param` names the field) when a field the router reads has the wrong shape."""
    if endpoint != "embeddings":
        check_type(body, "stream", bool, "a boolean")
        options = check_type(body, "stream_options", dict, "an object")
        if options is not None:
            _check_field(options, "include_usage", bool, "a boolean", "stream_options.include_usage")
    if endpoint == "chat":
        _check_chat(body)


def _check_chat(body: dict[str, Any]) -> None:
    messages = check_type(body, "messages", list, "an array of message objects", required=True)
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise invalid(f"'{where}' must be a message object, not {type(m).__name__}.", where, "invalid_type")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise invalid(f"'{where}.role' must be a non-empty string.", f"{where}.role", "invalid_type")
        content = m.get("content")
        if content is not None and not isinstance(content, _MESSAGE_CONTENT):
            raise invalid(f"'{where}.content' must be a string or an array of parts, not {type(content).__name__}.",
                          f"{where}.content", "invalid_type")
        calls = m.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise invalid(f"'{where}.tool_calls' must be an array of objects.", f"{where}.tool_calls",
                          "invalid_type")
    tools = check_type(body, "tools", list, "an array of tool objects")
    for i, t in enumerate(tools or []):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            raise invalid(f"'{where}' must be a tool object, not {type(t).__name__}.", where, "invalid_type")
        fn = t.get("function")
        if fn is not None and not isinstance(fn, dict):
            raise invalid(f"'{where}.function' must be an object.", f"{where}.function", "invalid_type")
        if isinstance(fn, dict) and not isinstance(fn.get("name"), str):
            raise invalid(f"'{where}.function.name' must be a string.", f"{where}.function.name", "invalid_type")
    check_type(body, "tool_choice", (str, dict), "a string or an object")
    check_type(body, "parallel_tool_calls", bool, "a boolean")


def _check_field(obj: dict[str, Any], name: str, kind: type, what: str, param: str) -> None:
    value = obj.get(name)
    if value is not None and (isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)):
        raise invalid(f"'{param}' must be {what}, not {type(value).__name__}.", param, "invalid_type")
