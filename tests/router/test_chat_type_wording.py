"""The chat route's type errors name JSON types as OpenAI's do ("Invalid type for 'stream': expected a boolean, but
got a string instead."), never Python's ('str', 'dict', 'NoneType', 'list')."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}'}}
models:
  - {{name: m, provider: lab}}
"""
HI = [{"role": "user", "content": "hi"}]
PYTHON_NAMES = ("str", "int", "float", "bool", "dict", "list", "NoneType")


async def _refused(url: str, body: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 400, await resp.text()
        doc: dict[str, Any] = await resp.json()
    error: dict[str, Any] = doc["error"]
    assert not any(f" {name}." in error["message"] or f" {name} " in error["message"] for name in PYTHON_NAMES)
    return error


@pytest.mark.parametrize(("extra", "param", "message"), [
    ({"stream": "yes"}, "stream", "Invalid type for 'stream': expected a boolean, but got a string instead."),
    ({"stream_options": []}, "stream_options",
     "Invalid type for 'stream_options': expected an object, but got an array instead."),
    ({"stream_options": {"include_usage": "y"}}, "stream_options.include_usage",
     "Invalid type for 'stream_options.include_usage': expected a boolean, but got a string instead."),
    ({"messages": {"role": "user"}}, "messages",
     "Invalid type for 'messages': expected an array of message objects, but got an object instead."),
    ({"messages": ["hi"]}, "messages[0]",
     "Invalid type for 'messages[0]': expected an object, but got a string instead."),
    ({"messages": [None]}, "messages[0]", "Invalid type for 'messages[0]': expected an object, but got null instead."),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content",
     "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got an integer "
     "instead."),
    ({"tools": [5]}, "tools[0]", "Invalid type for 'tools[0]': expected an object, but got an integer instead."),
    ({"tool_choice": 1.5}, "tool_choice",
     "Invalid type for 'tool_choice': expected a string or an object, but got a number instead."),
])
async def test_a_field_of_another_type_is_named_with_json_types(fakes, router, extra: dict[str, Any], param: str,
                                                                message: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, {"model": "m", "messages": HI, **extra})
    assert (err["type"], err["param"], err["code"], err["message"]) == ("invalid_request_error", param,
                                                                         "invalid_type", message)
    assert not up.requests


async def test_a_body_that_is_no_object_names_its_json_type(fakes, router) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, [1, 2])
    assert err["message"] == "The request body must be a JSON object, not an array."
    assert not up.requests


@pytest.mark.parametrize("body", [{"model": "m"}, {"model": "m", "messages": None}])
async def test_no_messages_is_openai_s_missing_parameter(fakes, router, body: dict[str, Any]) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, body)
    assert err == {"message": "Missing required parameter: 'messages'.", "type": "invalid_request_error",
                   "param": "messages", "code": "missing_required_parameter"}
    assert not up.requests
