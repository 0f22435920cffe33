"""A Messages request field of the wrong type is Anthropic's 400, worded as Anthropic's API words it:
"<path>: Input should be a valid boolean" (a dotted path, indexes included), on `/v1/messages` and on
`/v1/messages/count_tokens`; the chat route keeps OpenAI's words for the same fault."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG

ASK = [{"role": "user", "content": "hi"}]
TOOL = {"name": "f", "input_schema": {"type": "object"}}

# (the fields sent over a valid body, the message Anthropic answers with)
CASES: list[tuple[dict[str, Any], str]] = [
    ({"stream": "yes"}, "stream: Input should be a valid boolean"),
    ({"model": 7}, "model: Input should be a valid string"),
    ({"messages": "x"}, "messages: Input should be a valid array"),
    ({"messages": {}}, "messages: Input should be a valid array"),
    ({"max_tokens": "16"}, "max_tokens: Input should be a valid integer"),
    ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
    ({"max_tokens": 1.5}, "max_tokens: Input should be a valid integer"),
    ({"temperature": "x"}, "temperature: Input should be a valid number"),
    ({"temperature": False}, "temperature: Input should be a valid number"),
    ({"top_p": []}, "top_p: Input should be a valid number"),
    ({"top_k": "x"}, "top_k: Input should be a valid integer"),
    ({"stop_sequences": "ZZ"}, "stop_sequences: Input should be a valid array"),
    ({"stop_sequences": ["a", 1]}, "stop_sequences.1: Input should be a valid string"),
    ({"metadata": "x"}, "metadata: Input does not match the expected shape."),
    ({"metadata": {"user_id": 7}}, "metadata.user_id: Input should be a valid string"),
    ({"output_config": "x"}, "output_config: Input does not match the expected shape."),
    ({"thinking": "x"}, "thinking: Input should be an object"),
    ({"system": 7}, "system: Input should be a valid array"),
    ({"tools": "x"}, "tools: Input should be a valid array"),
    ({"tools": [TOOL, 7]}, "tools.1: Input should be an object"),
    ({"tool_choice": 7}, "tool_choice: Input should be an object"),
    ({"tools": [TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}},
     "tool_choice.auto.disable_parallel_tool_use: Input should be a valid boolean"),
]


async def _refused(url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as resp:
        assert resp.status == 400, await resp.text()
        doc: dict[str, Any] = await resp.json()
    assert doc["type"] == "error", doc
    error: dict[str, Any] = doc["error"]
    return error


@pytest.mark.parametrize(("fields", "message"), CASES)
async def test_a_wrong_type_is_worded_as_anthropic_words_it(fakes, router, fields: dict[str, Any],
                                                            message: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 16, "messages": ASK, **fields}
    want = {"type": "invalid_request_error", "message": message}
    assert await _refused(r.url + "/v1/messages", body) == want
    if "stream" not in fields:  # (count_tokens takes no `stream`: it is left out before the checks)
        assert await _refused(r.url + "/v1/messages/count_tokens", body) == want
    assert not up.requests


async def test_the_chat_route_keeps_openai_s_words(fakes, router) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "messages": ASK, "stream": "yes"}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 400
        doc = await resp.json()
    assert doc["error"]["message"] == "Invalid type for 'stream': expected a boolean, but got a string instead."
    assert doc["error"]["param"] == "stream"
