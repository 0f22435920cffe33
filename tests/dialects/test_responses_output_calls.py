"""A whole (non-stream) answer's calls as Response output items: arguments that are a JSON object go out as the
model wrote them, arguments cut off go out as they were left (`incomplete`), anything else is made an object."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.responses import output_items


def _answer(arguments: object) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": arguments}}
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                         "finish_reason": "tool_calls"}]}


@pytest.mark.parametrize(("arguments", "sent", "status"), [
    ('{"command": "ls"}', '{"command": "ls"}', "completed"),
    (' {"command":"ls",\n "timeout": 1.50}\n', ' {"command":"ls",\n "timeout": 1.50}\n', "completed"),
    ('{"a": {"b": [1, 2, {"c": null}]}}', '{"a": {"b": [1, 2, {"c": null}]}}', "completed"),
    ('{"a": NaN}', '{"a": NaN}', "completed"),
    ('{"command": "printf \'hello wor', '{"command": "printf \'hello wor', "incomplete"),
    ('{"command": "ls", "timeout": 12', '{"command": "ls", "timeout": 12', "incomplete"),
    ("[1, 2]", "{}", "completed"),
    ("null", "{}", "completed"),
    ("", "{}", "completed"),
    ('{"command": "ls"} trailing', '{"command": "ls"}', "completed"),
    ({"command": "ls"}, '{"command": "ls"}', "completed"),
])
def test_a_calls_arguments_go_out_as_written_when_whole(arguments: object, sent: str, status: str) -> None:
    items, finish = output_items(_answer(arguments))
    assert finish == "tool_calls"
    assert [(i["type"], i["arguments"], i["status"]) for i in items] == [("function_call", sent, status)]


def test_arguments_nested_past_the_parsers_depth_are_looked_at_as_before() -> None:
    deep = '{"a": ' + "[" * 100_000  # cut off, nested deeper than the standard library reads
    items, _ = output_items(_answer(deep))
    assert [(i["arguments"], i["status"]) for i in items] == [(deep, "incomplete")]
