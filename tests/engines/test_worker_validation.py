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


def _tool(parameters: Any, name: str = "get_weather") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def _format(schema: Any, name: str = "reply") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


SLOPPY_BUT_SERVED = [
    {"type": "nonsense"},
    {"type": "object", "properties": 5},
    {"type": "object", "required": "city"},
    {"type": "array", "items": [5]},
    # what MCP servers send (a draft-3 `required: true`, examples as a string, `type: "any"`, numbers as strings)
    {"type": "object", "properties": {"path": {"type": "string", "required": True}}},
    {"type": "object", "properties": {"path": {"type": "string", "examples": "src/main.py", "description": None}}},
    {"type": "object", "properties": {"v": {"type": "any"}, "n": {"type": "string", "maxLength": "10"}}},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "a"]},
    {"type": "object", "properties": {"city": {"type": "str"}, "days": {"type": "int"}}, "required": ["city"]},
]
VALID_BUT_NOT_COMPILED = [
    {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}},  # no value satisfies it
    {"type": "string", "pattern": "(?<=a)b"},  # a lookbehind, which the grammar compiler refuses
    {"type": "string", "pattern": "\\p{L}+"},  # ECMA-262 (what JSON Schema's patterns are), not Python's regex
    {"type": "object", "x-vendor": {"anything": [1, 2]}, "properties": {"a": {"type": "string", "format": "nope"}}},
    {"type": "array", "items": [{"type": "string"}]},  # draft 7's tuple form, in a schema naming no draft
]


@pytest.mark.parametrize("schema", SLOPPY_BUT_SERVED + VALID_BUT_NOT_COMPILED)
async def test_a_schema_the_grammar_cannot_follow_is_served_unconstrained(
        engine: Callable[..., Awaitable[Engine]], schema: dict[str, Any]) -> None:
    """OpenAI refuses a schema that is not JSON Schema; local servers (mlx_lm.server, llama.cpp, Ollama) serve it,
    and MCP servers in the wild send such schemas: one sloppy tool would end every request of an agent's session.
    Served, decoded unconstrained where the grammar cannot be built, and repaired as before."""
    e = await engine("random")
    for extra in ({"response_format": _format(schema)}, {"tools": [_tool(schema)], "tool_choice": "required"},
                  {"tools": [_tool({"type": "object", "properties": {}}, "ok"), _tool(schema)]}):
        status, done = await _post(e, CHAT, {"messages": HI, "max_tokens": 1, **extra})
        assert status == 200, (extra, done)


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
async def test_a_user_that_is_no_string_is_a_400(engine: Callable[..., Awaitable[Engine]], path: str) -> None:
    """`user` of any type was ignored; OpenAI answers 400 ("Invalid type for 'user': expected a string"), vLLM too."""
    e = await engine("random")
    for user in (5, True, {"id": "u1"}, ["u1"]):
        status, err = await _post(e, path, {**_ask(path), "max_tokens": 1, "user": user})
        assert status == 400, (user, err)
        assert (err["error"]["param"], err["error"]["code"]) == ("user", "invalid_type"), err
    for user in ("user-1234", "", None):
        status, done = await _post(e, path, {**_ask(path), "max_tokens": 1, "user": user})
        assert status == 200, done


async def test_modalities_other_than_text_are_refused(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`modalities: ["text", "audio"]` was answered with text alone, as if the audio had been granted; this engine
    makes text only, so asking for audio is a 400 unsupported_parameter, and a modality OpenAI does not know (or a
    `modalities` that is no list of strings) a 400 as OpenAI's."""
    e = await engine("random")
    for modalities, code in ((["text", "audio"], "unsupported_parameter"), (["audio"], "unsupported_parameter"),
                             (["text", "video"], "invalid_value"), ("text", "invalid_type"), ([1], "invalid_type")):
        status, err = await _post(e, CHAT, {"messages": HI, "max_tokens": 1, "modalities": modalities})
        assert status == 400, (modalities, err)
        assert (err["error"]["param"], err["error"]["code"]) == ("modalities", code), err
    for modalities in (["text"], None):
        status, done = await _post(e, CHAT, {"messages": HI, "max_tokens": 1, "modalities": modalities})
        assert status == 200, done


async def test_a_stream_options_member_of_the_wrong_type_is_named_in_full(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """`stream_options.include_usage: "yes"` was refused under a param `include_usage`, which the request has not;
    OpenAI names `stream_options.include_usage`."""
    e = await engine("random")
    status, err = await _post(e, CHAT, {"messages": HI, "max_tokens": 1, "stream": True,
                                        "stream_options": {"include_usage": "yes"}})
    assert status == 400, err
    assert (err["error"]["param"], err["error"]["code"]) == ("stream_options.include_usage", "invalid_type"), err
    assert "'stream_options.include_usage'" in err["error"]["message"], err


async def test_max_tokens_is_checked_beside_max_completion_tokens(engine: Callable[..., Awaitable[Engine]]) -> None:
    """With `max_completion_tokens` set, a `max_tokens` of 0, -5 or "10" was ignored unread; each field is now
    checked (OpenAI checks both), the limit still read from `max_completion_tokens`."""
    e = await engine("random")
    for bad, code in ((0, "invalid_value"), (-5, "invalid_value"), ("10", "invalid_type")):
        status, err = await _post(e, CHAT, {"messages": HI, "max_completion_tokens": 1, "max_tokens": bad})
        assert status == 400, (bad, err)
        assert (err["error"]["param"], err["error"]["code"]) == ("max_tokens", code), err
    status, done = await _post(e, CHAT, {"messages": HI, "max_completion_tokens": 1, "max_tokens": 50})
    assert status == 200 and done["usage"]["completion_tokens"] <= 1, done


async def test_a_message_name_that_is_no_string_is_a_400(engine: Callable[..., Awaitable[Engine]]) -> None:
    """A message's `name` of another type was dropped unsaid (the model never saw who spoke); OpenAI answers 400."""
    e = await engine("random")
    for name in (5, {"first": "Ada"}, ["Ada"]):
        status, err = await _post(e, CHAT, {"messages": [{"role": "user", "content": "hi", "name": name}],
                                            "max_tokens": 1})
        assert status == 400, (name, err)
        assert "'messages[0].name'" in err["error"]["message"] and err["error"]["code"] == "invalid_type", err
        assert err["error"]["param"] == "messages", err
    for name in ("Ada", None):
        status, done = await _post(e, CHAT, {"messages": [{"role": "user", "content": "hi", "name": name}],
                                             "max_tokens": 1})
        assert status == 200, done
