"""Errors in a Responses request's `input` items name the item or field at fault by its full path
(`input[1].content[0].image_url`), as OpenAI names them and as the text parts' errors already did; `input` alone
only when the whole of it is at fault."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG

USER = {"role": "user", "content": "hi"}


def _msg(role: str, *parts: object) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": list(parts)}


@pytest.mark.parametrize(("items", "param"), [
    ([USER, 7], "input[1]"),
    ([USER, {"type": "message", "role": "robot", "content": "x"}], "input[1]"),
    ([USER, {"type": "bogus_item"}], "input[1]"),
    ([USER, {"type": "message", "role": "user"}], "input[1].content"),
    ([USER, {"type": "message", "role": "user", "content": 5}], "input[1].content"),
    ([_msg("user", "x")], "input[0].content[0]"),
    ([_msg("user", {"type": "bogus", "text": "x"})], "input[0].content[0].type"),
    ([USER, _msg("assistant", {"type": "input_image", "image_url": "https://x/a.png"})], "input[1].content[0]"),
    ([_msg("user", {"type": "input_image", "file_id": "file_1"})], "input[0].content[0].image_url"),
    ([_msg("user", {"type": "input_file"})], "input[0].content[0]"),
    ([USER, {"type": "function_call", "name": "f", "arguments": "{}"}], "input[1].call_id"),
    ([USER, {"type": "function_call", "call_id": "c", "arguments": "{}"}], "input[1].name"),
    ([USER, {"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}], "input[1].arguments"),
    ([USER, {"type": "function_call", "call_id": "c", "name": "f", "namespace": 3}], "input[1].namespace"),
    ([USER, {"type": "custom_tool_call", "call_id": "c", "name": "f", "input": 3}], "input[1].input"),
    ([USER, {"type": "function_call_output", "output": "x"}], "input[1].call_id"),
    ([USER, {"type": "function_call_output", "call_id": "c", "output": 5}], "input[1].output"),
    ([USER, {"type": "function_call_output", "call_id": "c", "output": [{"type": "bogus"}]}],
     "input[1].output[0].type"),
    ([USER, {"type": "item_reference", "id": 5}], "input[1].id"),
])
async def test_an_input_item_error_names_its_full_path(fakes, router, items, param):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json={"model": "m", "input": items}) \
            as resp:
        assert resp.status == 400
        err = (await resp.json())["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["code"], err
    assert not up.requests


FN = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize(("tools", "param", "code"), [
    ([FN, 7], "tools[1]", "invalid_type"),
    ([FN, {"name": "g"}], "tools[1].type", "missing_required_parameter"),
    ([FN, {"type": "function"}], "tools[1].name", "missing_required_parameter"),
    ([FN, {"type": "function", "name": 5}], "tools[1].name", "invalid_type"),
    ([FN, {"type": "function", "name": "g", "parameters": "{}"}], "tools[1].parameters", "invalid_type"),
    ([FN, {"type": "function", "name": "g", "description": 5}], "tools[1].description", "invalid_type"),
    ([FN, {"type": "custom"}], "tools[1].name", "missing_required_parameter"),
    ([FN, FN], "tools[1].name", "invalid_value"),
    ([{"type": "namespace", "name": "ns"}], "tools[0].tools", "missing_required_parameter"),
    ([{"type": "namespace", "tools": []}], "tools[0].name", "missing_required_parameter"),
    ([{"type": "namespace", "name": "ns", "tools": [3]}], "tools[0].tools[0]", "invalid_type"),
    ([{"type": "namespace", "name": "ns", "tools": [{"type": "function"}]}], "tools[0].tools[0].name",
     "missing_required_parameter"),
])
async def test_a_tool_error_names_its_full_path(fakes, router, tools, param, code):
    """A malformed tool was a 400 naming only `tools`; it now names the tool or field at fault, as OpenAI does
    (`tools[1].name`, `Missing required parameter` for one absent)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "tools": tools}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 400
        err = (await resp.json())["error"]
    assert (err["param"], err["code"]) == (param, code), err
    assert not up.requests


async def test_a_tool_choice_without_its_name_names_it(fakes, router):
    """`{"type": "function"}` was a 400 naming `tool_choice`; OpenAI names the missing `tool_choice.name`."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for kind in ("function", "custom"):
        body = {"model": "m", "input": "hi", "tools": [FN], "tool_choice": {"type": kind}}
        async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
            assert resp.status == 400
            err = (await resp.json())["error"]
        assert (err["param"], err["code"]) == ("tool_choice.name", "missing_required_parameter"), err
        assert err["message"] == "Missing required parameter: 'tool_choice.name'."
    assert not up.requests
