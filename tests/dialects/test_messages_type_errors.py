"""A Messages request field of the wrong type is Anthropic's 400, worded as Anthropic's API words it:
"<path>: Input should be a valid boolean" (a dotted path, indexes included), on `/v1/messages` and on
`/v1/messages/count_tokens`; the chat route keeps OpenAI's words for the same fault."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG, anthropic_refused

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


@pytest.mark.parametrize(("fields", "message"), CASES)
async def test_a_wrong_type_is_worded_as_anthropic_words_it(fakes, router, fields: dict[str, Any],
                                                            message: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 16, "messages": ASK, **fields}
    want = {"type": "invalid_request_error", "message": message}
    assert await anthropic_refused(r.url + "/v1/messages", body) == want
    if "stream" not in fields:  # (count_tokens takes no `stream`: it is left out before the checks)
        assert await anthropic_refused(r.url + "/v1/messages/count_tokens", body) == want
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


def _used(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A history whose assistant turn holds `block` (a tool_use), answered."""
    return [*ASK, {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}]


def _answered(**fields: Any) -> list[dict[str, Any]]:
    """A history whose last user turn holds a tool_result with `fields` over a valid one."""
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok", **fields}
    return [*ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [result]}]


USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}

# (the messages or system sent, the message Anthropic answers with): a content block's path holds its type
NESTED: list[tuple[dict[str, Any], str]] = [
    ({"messages": [7]}, "messages.0: Input should be an object"),
    ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content: Input should be a valid array"),
    ({"messages": [{"role": "user", "content": None}]}, "messages.0.content: Input should be a valid array"),
    ({"messages": [*ASK, {"role": "system", "content": 7}]}, "messages.1.content: Input should be a valid array"),
    ({"messages": [{"role": "user", "content": [7]}]}, "messages.0.content.0: Input should be an object"),
    ({"messages": [{"role": "user", "content": [{}]}]}, "messages.0.content.0.type: Field required"),
    ({"messages": [{"role": "user", "content": [{"type": 7}]}]},
     "messages.0.content.0.type: Input should be a valid string"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]},
     "messages.0.content.0.text.text: Input should be a valid string"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages.0.content.0.text.text: Field required"),
    ({"messages": _used({**USE, "input": "x"})}, "messages.1.content.0.tool_use.input: Input should be an object"),
    ({"messages": _used({**USE, "id": 7})}, "messages.1.content.0.tool_use.id: Input should be a valid string"),
    ({"messages": _used({k: v for k, v in USE.items() if k != "name"})},
     "messages.1.content.0.tool_use.name: Field required"),
    ({"messages": _answered(tool_use_id=7)},
     "messages.2.content.0.tool_result.tool_use_id: Input should be a valid string"),
    ({"messages": _answered(content=7)}, "messages.2.content.0.tool_result.content: Input should be a valid array"),
    ({"messages": _answered(is_error="yes")},
     "messages.2.content.0.tool_result.is_error: Input should be a valid boolean"),
    ({"system": [7]}, "system.0: Input does not match the expected shape."),
    ({"system": [{"type": "text", "text": 7}]}, "system.0.text: Input should be a valid string"),
]


@pytest.mark.parametrize(("fields", "message"), NESTED)
async def test_a_nested_wrong_type_names_its_dotted_path(fakes, router, fields: dict[str, Any], message: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 16, "messages": ASK, **fields}
    want = {"type": "invalid_request_error", "message": message}
    assert await anthropic_refused(r.url + "/v1/messages", body) == want
    assert await anthropic_refused(r.url + "/v1/messages/count_tokens", body) == want
    assert not up.requests
