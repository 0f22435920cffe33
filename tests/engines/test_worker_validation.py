"""Request fields the worker checks as OpenAI and vLLM check them, each refused with a 400 naming the field: a
client that sends them to the engine hears what it would hear from either."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.engines.conftest import Engine

HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


async def _post(e: Engine, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await e.post_raw(path, json.dumps(body).encode())


def _ask(path: str) -> dict[str, Any]:
    return {"messages": HI} if path == CHAT else {"prompt": "hi"}


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
async def test_stream_options_without_a_stream_is_a_400(engine: Callable[..., Awaitable[Engine]], path: str) -> None:
    """`stream_options` on a request that does not stream was ignored; OpenAI answers 400 ("The 'stream_options'
    parameter is only allowed when 'stream' is enabled."), vLLM too. A null one, or one with a stream, is served."""
    e = await engine("random")
    for extra in ({}, {"stream": False}, {"stream": None}):
        body = {**_ask(path), "max_tokens": 1, "stream_options": {"include_usage": True}, **extra}
        status, err = await _post(e, path, body)
        assert status == 400, (extra, err)
        assert err["error"]["param"] == "stream_options" and "'stream' is enabled" in err["error"]["message"], err
        assert err["error"]["type"] == "invalid_request_error", err
    status, done = await _post(e, path, {**_ask(path), "max_tokens": 1, "stream_options": None})
    assert status == 200, done
    status, err = await _post(e, path, {**_ask(path), "max_tokens": 1, "stream": True, "stream_options": 5})
    assert status == 400 and err["error"]["code"] == "invalid_type", err
    stream = await e.client().chat.completions.create(model="random", messages=HI, max_tokens=1, stream=True,  # type: ignore[call-overload]
                                                       stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def _history(call: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    return [*HI, {"role": "assistant", "content": None, "tool_calls": [call]}, result]


async def test_tool_call_ids_are_required_strings(engine: Callable[..., Awaitable[Engine]]) -> None:
    """A tool message without `tool_call_id` (or with one that is no string) was rendered as a result answering no
    call; a call whose `id` is no string was given one of ours. OpenAI answers 400 naming the field."""
    e = await engine("random")
    result = {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
    for messages, field, code in (
        (_history(CALL, {"role": "tool", "content": "18C"}), "messages[2].tool_call_id", "missing_required_parameter"),
        (_history(CALL, {**result, "tool_call_id": None}), "messages[2].tool_call_id", "missing_required_parameter"),
        (_history(CALL, {**result, "tool_call_id": ""}), "messages[2].tool_call_id", "missing_required_parameter"),
        (_history(CALL, {**result, "tool_call_id": 1}), "messages[2].tool_call_id", "invalid_type"),
        (_history({**CALL, "id": 7}, result), "messages[1].tool_calls[0].id", "invalid_type"),
        (_history({**CALL, "id": ["call_1"]}, result), "messages[1].tool_calls[0].id", "invalid_type"),
    ):
        status, err = await _post(e, CHAT, {"messages": messages, "max_tokens": 1})
        assert status == 400, (field, err)
        assert f"'{field}'" in err["error"]["message"] and err["error"]["code"] == code, err
        assert err["error"]["param"] == "messages", err
    status, done = await _post(e, CHAT, {"messages": _history(CALL, result), "max_tokens": 1})
    assert status == 200, done
