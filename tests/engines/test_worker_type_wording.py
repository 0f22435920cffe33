"""The worker's type errors name JSON types as OpenAI's do ("Invalid type for 'stream': expected a boolean, but got
a string instead."), never Python's ('str', 'dict', 'NoneType')."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.engines.conftest import Engine

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("extra", "param", "message"), [
    ({"stream": "yes"}, "stream", "Invalid type for 'stream': expected a boolean, but got a string instead."),
    ({"model": {"id": "random"}}, "model", "Invalid type for 'model': expected a string, but got an object instead."),
    ({"user": 5}, "user", "Invalid type for 'user': expected a string, but got an integer instead."),
    ({"metadata": []}, "metadata", "Invalid type for 'metadata': expected an object, but got an array instead."),
    ({"stream": True, "stream_options": {"include_usage": "y"}}, "stream_options.include_usage",
     "Invalid type for 'stream_options.include_usage': expected a boolean, but got a string instead."),
])
async def test_a_field_of_another_type_is_named_with_json_types(engine: Callable[..., Awaitable[Engine]],
                                                                extra: dict[str, Any], param: str,
                                                                message: str) -> None:
    e = await engine("random")
    status, doc = await e.post_raw("/v1/chat/completions",
                                   json.dumps({"messages": HI, "max_tokens": 1, **extra}).encode())
    assert status == 400, doc
    assert doc["error"] == {"message": message, "type": "invalid_request_error", "param": param,
                            "code": "invalid_type"}


@pytest.mark.parametrize(("messages", "err"), [
    (None, {"message": "Missing required parameter: 'messages'.", "param": "messages",
            "code": "missing_required_parameter"}),
    ({"role": "user"}, {"message": "Invalid type for 'messages': expected an array, but got an object instead.",
                        "param": "messages", "code": "invalid_type"}),
    (["hi"], {"message": "Invalid type for 'messages[0]': expected an object, but got a string instead.",
              "param": "messages", "code": "invalid_type"}),  # (the worker's param for what a message holds)
    ([], {"message": "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                     "array instead.", "param": "messages", "code": "empty_array"}),  # OpenAI's, word for word
])
async def test_messages_missing_or_of_another_type_are_openai_s_400(engine: Callable[..., Awaitable[Engine]],
                                                                    messages: Any, err: dict[str, Any]) -> None:
    """They were "'messages' must be a non-empty list" (code invalid_type for an absent one too) and "messages[0]
    must be an object"."""
    e = await engine("random")
    body = {"max_tokens": 1, **({} if messages is None else {"messages": messages})}
    status, doc = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 400, doc
    assert doc["error"] == {**err, "type": "invalid_request_error"}
