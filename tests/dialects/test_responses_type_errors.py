"""A field of a Responses request of the wrong type is OpenAI's `invalid_type` 400: the field's full path, the JSON
type it takes and the JSON type sent ("Invalid type for 'text.format.strict': expected a boolean, but got a string
instead."), never a Python type name ("not str", "dict")."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG

USER = {"role": "user", "content": "hi"}
CALL = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
FN = {"type": "function", "name": "f"}
SCHEMA_FORMAT = {"type": "json_schema", "name": "out", "schema": {"type": "object"}}
PYTHON_NAMES = re.compile(r"\b(str|int|float|bool|dict|list|NoneType)\b")

# (fields of the request, the field at fault, the type it takes, the type sent)
CASES: list[tuple[dict[str, Any], str, str, str]] = [
    ({"model": 5}, "model", "a string", "an integer"),
    ({"stream": "yes"}, "stream", "a boolean", "a string"),
    ({"store": 1}, "store", "a boolean", "an integer"),
    ({"background": "no"}, "background", "a boolean", "a string"),
    ({"previous_response_id": 5}, "previous_response_id", "a string", "an integer"),
    ({"instructions": ["be brief"]}, "instructions", "a string", "an array"),
    ({"max_output_tokens": "100"}, "max_output_tokens", "an integer", "a string"),
    ({"max_output_tokens": 100.5}, "max_output_tokens", "an integer", "a number"),
    ({"max_tool_calls": True}, "max_tool_calls", "an integer", "a boolean"),
    ({"temperature": "hot"}, "temperature", "a number", "a string"),
    ({"top_p": [1]}, "top_p", "a number", "an array"),
    ({"top_logprobs": 1.5}, "top_logprobs", "an integer", "a number"),
    ({"parallel_tool_calls": "true"}, "parallel_tool_calls", "a boolean", "a string"),
    ({"metadata": "tag"}, "metadata", "an object", "a string"),
    ({"safety_identifier": 5}, "safety_identifier", "a string", "an integer"),
    ({"user": {}}, "user", "a string", "an object"),
    ({"prompt_cache_key": 5}, "prompt_cache_key", "a string", "an integer"),
    ({"service_tier": False}, "service_tier", "a string", "a boolean"),
    ({"truncation": 1}, "truncation", "a string", "an integer"),
    ({"include": "usage"}, "include", "an array", "a string"),
    ({"include": ["usage", 7]}, "include[1]", "a string", "an integer"),
    ({"reasoning": "high"}, "reasoning", "an object", "a string"),
    ({"reasoning": {"effort": 5}}, "reasoning.effort", "a string", "an integer"),
    ({"reasoning": {"summary": ["auto"]}}, "reasoning.summary", "a string", "an array"),
    ({"text": "json"}, "text", "an object", "a string"),
    ({"text": {"format": "json"}}, "text.format", "an object", "a string"),
    ({"text": {"verbosity": 1}}, "text.verbosity", "a string", "an integer"),
    ({"text": {"format": {**SCHEMA_FORMAT, "strict": "yes"}}}, "text.format.strict", "a boolean", "a string"),
    ({"text": {"format": {**SCHEMA_FORMAT, "name": 5}}}, "text.format.name", "a string", "an integer"),
    ({"text": {"format": {**SCHEMA_FORMAT, "schema": []}}}, "text.format.schema", "an object", "an array"),
    ({"input": 5}, "input", "a string or an array of input items", "an integer"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content", "a string or an array of content parts",
     "an integer"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0].text",
     "a string", "an integer"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": {"a": 1}}]}]},
     "input[0].content[0].text", "a string", "an object"),
    ({"input": [USER, {"type": "message", "role": "assistant",
                       "content": [{"type": "refusal", "refusal": False}]}]}, "input[1].content[0].refusal",
     "a string", "a boolean"),
    ({"input": [USER, {**CALL, "arguments": {}}]}, "input[1].arguments", "a string", "an object"),
    ({"input": [USER, {**CALL, "namespace": 3}]}, "input[1].namespace", "a string", "an integer"),
    ({"input": [USER, {**CALL, "call_id": 3}]}, "input[1].call_id", "a string", "an integer"),
    ({"input": [USER, {**CALL, "name": ["f"]}]}, "input[1].name", "a string", "an array"),
    ({"input": [USER, {**CALL, "type": "custom_tool_call", "input": 3}]}, "input[1].input", "a string",
     "an integer"),
    ({"input": [USER, CALL, {"type": "function_call_output", "call_id": "c", "output": 5}]}, "input[2].output",
     "a string or an array of content parts", "an integer"),
    ({"input": [USER, CALL, {"type": "function_call_output", "call_id": 5, "output": "x"}]}, "input[2].call_id",
     "a string", "an integer"),
    ({"input": [{"type": "item_reference", "id": 5}]}, "input[0].id", "a string", "an integer"),
    ({"tools": {"f": FN}}, "tools", "an array", "an object"),
    ({"tools": [FN, 7]}, "tools[1]", "an object", "an integer"),
    ({"tools": [{**FN, "name": 5}]}, "tools[0].name", "a string", "an integer"),
    ({"tools": [{**FN, "parameters": "{}"}]}, "tools[0].parameters", "an object", "a string"),
    ({"tools": [{**FN, "description": 5}]}, "tools[0].description", "a string", "an integer"),
    ({"tools": [{"type": 5, "name": "f"}]}, "tools[0].type", "a string", "an integer"),
    ({"tools": [{"type": "namespace", "name": "ns", "tools": "f"}]}, "tools[0].tools", "an array", "a string"),
    ({"tools": [{"type": "namespace", "name": "ns", "tools": [None]}]}, "tools[0].tools[0]", "an object", "null"),
]


@pytest.mark.parametrize(("fields", "param", "expected", "got"), CASES, ids=[c[1] for c in CASES])
async def test_a_field_of_the_wrong_type_is_openai_s_invalid_type(fakes, router, fields: dict[str, Any],
                                                                  param: str, expected: str, got: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "store": False, **fields}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 400, await resp.text()
        err = (await resp.json())["error"]
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", "invalid_type", param), err
    assert err["message"] == f"Invalid type for '{param}': expected {expected}, but got {got} instead.", err
    assert not PYTHON_NAMES.search(err["message"].replace(f"'{param}'", "")), err["message"]
    assert not up.requests
