"""The chat request checks: a 400 whose `param` names the first field with the wrong shape."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.openai_request import check_request
from router.errors import ApiError

OK_MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "x"}]},
               {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]}]
OK_TOOLS = [{"type": "function", "function": {"name": "f"}}, {"type": "custom"}]


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [*OK_MESSAGES, "hi"]}, "messages[3]"),
    ({"messages": [*OK_MESSAGES, {"content": "hi"}]}, "messages[3].role"),
    ({"messages": [{"role": "", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 5, "tool_calls": 1}]}, "messages[0].content"),
    ({"messages": [{"role": "assistant", "tool_calls": {"id": "a"}}]}, "messages[0].tool_calls"),
    ({"messages": [{"role": "assistant", "tool_calls": ["a"]}]}, "messages[0].tool_calls"),
    ({"messages": OK_MESSAGES, "tools": [*OK_TOOLS, "f"]}, "tools[2]"),
    ({"messages": OK_MESSAGES, "tools": [{"type": "function", "function": "f"}]}, "tools[0].function"),
    ({"messages": OK_MESSAGES, "tools": [{"type": "function", "function": {"name": 3}}]}, "tools[0].function.name"),
    ({"messages": OK_MESSAGES, "tools": {"a": 1}}, "tools"),
    ({"messages": OK_MESSAGES, "tool_choice": 1}, "tool_choice"),
])
def test_the_first_wrong_field_is_named(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as err:
        check_request("chat", body)
    assert err.value.status == 400 and err.value.param == param


def test_a_tools_list_checked_before_is_not_walked_again() -> None:
    check_request("chat", {"messages": OK_MESSAGES, "tools": OK_TOOLS})
    check_request("chat", {"messages": OK_MESSAGES, "tools": ["not walked"]}, tools_checked=True)
    with pytest.raises(ApiError):  # the messages still are
        check_request("chat", {"messages": [1], "tools": OK_TOOLS}, tools_checked=True)
