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
