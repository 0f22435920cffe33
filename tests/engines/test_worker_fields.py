"""Chat request fields the worker does not act on but checks, as OpenAI and vLLM check them: a value neither would
take is a 400 naming the field, and one a client sends to either is served."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.engines.conftest import Engine

HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


async def _chat(e: Engine, **fields: Any) -> tuple[int, Any]:
    return await e.post_raw(CHAT, json.dumps({"messages": HI, "max_tokens": 1, **fields}).encode())


def _refused(status: int, err: Any, param: str, code: str) -> None:
    assert status == 400, err
    assert (err["error"]["param"], err["error"]["code"], err["error"]["type"]) == (param, code,
                                                                                   "invalid_request_error"), err


async def test_a_reasoning_effort_no_api_knows_is_a_400(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`reasoning_effort` of any value was ignored; OpenAI answers 400 for a level it does not know ("Invalid value:
    'extreme'. Supported values are: ..."), vLLM too. The levels OpenAI's API lists (vLLM's low/medium/high and the
    newer ones clients send) are served."""
    e = await engine("random")
    for effort, code in (("extreme", "invalid_value"), ("", "invalid_value"), ("HIGH", "invalid_value"),
                         (5, "invalid_type"), (True, "invalid_type"), (["low"], "invalid_type")):
        status, err = await _chat(e, reasoning_effort=effort)
        _refused(status, err, "reasoning_effort", code)
    status, err = await _chat(e, reasoning_effort="extreme")
    assert "'extreme'" in err["error"]["message"] and "'medium'" in err["error"]["message"], err
    for effort in ("none", "minimal", "low", "medium", "high", "xhigh", "max", None):
        status, done = await _chat(e, reasoning_effort=effort)
        assert status == 200, (effort, done)


async def test_metadata_and_store_of_the_wrong_type_are_a_400(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`metadata` and `store` of any type were ignored; OpenAI and vLLM refuse a `metadata` that is no object and a
    `store` that is no boolean. Their contents are not read here (nothing is stored): metadata without `store`, which
    OpenAI refuses but vLLM serves and agent clients send to local servers, and non-string values (a proxy's tag
    lists) are served."""
    e = await engine("random")
    for value in ("run-1", ["a"], 5, True):
        status, err = await _chat(e, metadata=value)
        _refused(status, err, "metadata", "invalid_type")
    for value in ("yes", 1, {}):
        status, err = await _chat(e, store=value)
        _refused(status, err, "store", "invalid_type")
    for fields in ({"metadata": {"sessionId": "s1"}}, {"metadata": {"tags": ["a", "b"]}, "store": False},
                   {"metadata": None, "store": None}, {"store": True}):
        status, done = await _chat(e, **fields)
        assert status == 200, (fields, done)


async def test_audio_output_is_refused(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`audio` (OpenAI's audio output settings) of any type was ignored: one that is no object is a 400 as OpenAI's,
    and one that asks for audio is refused as `modalities: ["audio"]` is, since this engine makes text only."""
    e = await engine("random")
    for value in ("wav", ["alloy"], 5):
        status, err = await _chat(e, audio=value)
        _refused(status, err, "audio", "invalid_type")
    status, err = await _chat(e, audio={"voice": "alloy", "format": "wav"})
    _refused(status, err, "audio", "unsupported_parameter")
    status, done = await _chat(e, audio=None)
    assert status == 200, done


def _tool(name: str = "get_weather", **function: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}, **function}}


async def test_a_tool_description_or_strict_of_the_wrong_type_is_a_400(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """A tool's `description` that was no string reached the chat template as it came (rendered as `5` or a list),
    and a `strict` that was no boolean was ignored; OpenAI answers 400 for either, vLLM for the description."""
    e = await engine("random")
    for function, field in (({"description": 5}, "description"), ({"description": ["Weather"]}, "description"),
                            ({"strict": "yes"}, "strict"), ({"strict": 1}, "strict")):
        status, err = await _chat(e, tools=[_tool(**function)])
        _refused(status, err, "tools", "invalid_type")
        assert f"'tools[0].function.{field}'" in err["error"]["message"], err
    for function in ({"description": "Weather", "strict": True}, {"description": None, "strict": None},
                     {"strict": False}):
        status, done = await _chat(e, tools=[_tool(**function)])
        assert status == 200, (function, done)


@pytest.mark.parametrize("name", ["get weather", "get,weather", "get\nweather", "wetter_für_stadt", "x" * 129,
                                  "a<b>", "{name}"])
async def test_a_tool_name_no_call_format_carries_is_a_400(engine: Callable[..., Awaitable[Engine]],
                                                           name: str) -> None:
    """Any tool name was served: one with a space, a newline or a bracket reached the template and the call parser.
    OpenAI refuses names outside ^[a-zA-Z0-9_-]{1,64}$ and Anthropic outside ^[a-zA-Z0-9_-]{1,128}$; the names the
    MCP tool-name rules allow besides (dots, slashes) are served, as vLLM serves them and MCP clients send them."""
    e = await engine("random")
    status, err = await _chat(e, tools=[_tool(name)])
    _refused(status, err, "tools", "invalid_value")
    assert "'tools[0].function.name'" in err["error"]["message"] and "pattern" in err["error"]["message"], err


async def test_tool_names_mcp_clients_send_are_served(engine: Callable[..., Awaitable[Engine]]) -> None:
    e = await engine("random")
    names = ["get_weather", "mcp__github__create-issue", "calendar.respondToEvent", "user-profile/update", "x" * 128]
    status, done = await _chat(e, tools=[_tool(name) for name in names])
    assert status == 200, done


async def test_two_tools_of_one_name_are_a_400(engine: Callable[..., Awaitable[Engine]]) -> None:
    """Two tools of one name with different definitions were served: the template showed the model both, while the
    constraint and repair followed the first alone, so a call made to the second's schema was bent to the first's.
    Anthropic answers 400 ("Tool names must be unique"); the worker does when the definitions differ. The same tool
    listed twice declares nothing ambiguous and is served, as OpenAI and vLLM serve it."""
    e = await engine("random")
    other = _tool(description="Another tool of the same name")
    status, err = await _chat(e, tools=[_tool(), _tool("get_time"), other])
    _refused(status, err, "tools", "invalid_value")
    assert "'get_weather'" in err["error"]["message"] and "tools[0]" in err["error"]["message"], err
    assert "tools[2]" in err["error"]["message"], err
    status, done = await _chat(e, tools=[_tool(), _tool("get_time"), _tool()])
    assert status == 200, done


VLLM_ASKS = [("ignore_eos", True), ("min_tokens", 5), ("stop_token_ids", [2]), ("bad_words", ["no"]),
             ("allowed_token_ids", [5, 6]), ("include_stop_str_in_output", True), ("use_beam_search", True),
             ("prompt_logprobs", 1), ("guided_json", {"type": "object"}), ("guided_regex", "a+"),
             ("guided_choice", ["a", "b"]), ("guided_grammar", "root ::= 'a'"),
             ("structured_outputs", {"json": {"type": "object"}})]


@pytest.mark.parametrize("path", [CHAT, "/v1/completions"])
async def test_vllm_sampling_fields_this_engine_does_not_honour_are_refused(
        engine: Callable[..., Awaitable[Engine]], path: str) -> None:
    """vLLM's own sampling fields that this engine does not act on were ignored: `ignore_eos` stopped at EOS all
    the same, `guided_json` answered free text, `min_tokens` and `stop_token_ids` did nothing. Asking for any is a
    400 unsupported_parameter naming it; their defaults (false, 0, [], null), which clients send unasked, are
    served."""
    e = await engine("random")
    ask: dict[str, Any] = {"messages": HI} if path == CHAT else {"prompt": "hi"}
    for name, value in VLLM_ASKS:
        status, err = await e.post_raw(path, json.dumps({**ask, "max_tokens": 1, name: value}).encode())
        _refused(status, err, name, "unsupported_parameter")
    defaults = {"ignore_eos": False, "min_tokens": 0, "stop_token_ids": [], "bad_words": [], "allowed_token_ids": None,
                "include_stop_str_in_output": False, "use_beam_search": False, "prompt_logprobs": None,
                "guided_json": None, "structured_outputs": None}
    status, done = await e.post_raw(path, json.dumps({**ask, "max_tokens": 1, **defaults}).encode())
    assert status == 200, done


@pytest.mark.parametrize("key", ["1_0", " 10", "+10", "10 ", "１０", "0x0a"])
async def test_a_logit_bias_key_that_is_no_token_id_is_a_400(engine: Callable[..., Awaitable[Engine]],
                                                             key: str) -> None:
    """`logit_bias` keys were read with Python's int(), which takes "1_0", " 10", "+10" and full-width digits as
    token 10: a key mistyped by a client biased a token it never named. A key is a token id's decimal digits."""
    e = await engine("random")
    status, err = await _chat(e, logit_bias={key: 5})
    _refused(status, err, "logit_bias", "invalid_value")
    status, done = await _chat(e, logit_bias={"10": 5, "0": -100})
    assert status == 200, done


@pytest.mark.parametrize("name", ["verbosity", "service_tier", "prompt_cache_key", "safety_identifier"])
async def test_openai_string_fields_of_another_type_are_a_400(engine: Callable[..., Awaitable[Engine]],
                                                              name: str) -> None:
    """OpenAI's string fields this engine does not act on were ignored whatever their type; OpenAI answers 400 for
    one that is no string. Any string is served (their values grow: vLLM ignores them)."""
    e = await engine("random")
    for value in (5, True, ["a"], {"a": 1}):
        status, err = await _chat(e, **{name: value})
        _refused(status, err, name, "invalid_type")
    for value in ("low", "auto", None):
        status, done = await _chat(e, **{name: value})
        assert status == 200, done


@pytest.mark.parametrize("prompt", [["Say a", "Say b"], [[1, 2], [3, 4]]])
async def test_a_batch_of_prompts_is_refused_as_unsupported(engine: Callable[..., Awaitable[Engine]],
                                                            prompt: list[Any]) -> None:
    """A list of prompts (OpenAI and vLLM answer one choice each) was refused as `invalid_type`, as if the client had
    sent no prompt OpenAI takes; it is a valid request this engine does not serve: `unsupported_parameter`."""
    e = await engine("random")
    status, err = await e.post_raw("/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 1}).encode())
    _refused(status, err, "prompt", "unsupported_parameter")
    assert "one prompt" in err["error"]["message"], err
    for bad in ([["a"], "b"], [1, "a"], [[1, None]], []):
        status, err = await e.post_raw("/v1/completions", json.dumps({"prompt": bad, "max_tokens": 1}).encode())
        _refused(status, err, "prompt", "invalid_type")


async def test_a_json_schema_format_strict_or_description_of_the_wrong_type_is_a_400(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """`response_format.json_schema.strict: "yes"` or a `description` that is no string was served; OpenAI and vLLM
    answer 400."""
    e = await engine("random")
    for extra in ({"strict": "yes"}, {"strict": 1}, {"description": 5}, {"description": ["a"]}):
        fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": {"type": "object"}, **extra}}
        status, err = await _chat(e, response_format=fmt)
        _refused(status, err, "response_format", "invalid_type")
        assert f"'response_format.json_schema.{next(iter(extra))}'" in err["error"]["message"], err
    for extra in ({"strict": True, "description": "A reply"}, {"strict": None, "description": None}):
        fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": {"type": "object"}, **extra}}
        status, done = await _chat(e, response_format=fmt)
        assert status == 200, done


async def test_stream_options_members_are_checked(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`stream_options.continuous_usage_stats` (vLLM: usage on every chunk) and `include_obfuscation` (OpenAI) were
    ignored whatever their value. One that is no boolean is a 400 as vLLM's and OpenAI's; asking for usage on every
    chunk, which this engine does not send, is unsupported_parameter."""
    e = await engine("random")
    for member in ("continuous_usage_stats", "include_obfuscation"):
        status, err = await _chat(e, stream=True, stream_options={member: "yes"})
        _refused(status, err, f"stream_options.{member}", "invalid_type")
    status, err = await _chat(e, stream=True, stream_options={"continuous_usage_stats": True})
    _refused(status, err, "stream_options.continuous_usage_stats", "unsupported_parameter")
    opts = {"include_usage": True, "continuous_usage_stats": False, "include_obfuscation": False}
    body = {"messages": HI, "max_tokens": 1, "stream": True, "stream_options": opts}
    async with aiohttp.ClientSession() as s, s.post(e.url + CHAT, json=body) as resp:
        events = await resp.text()
    assert resp.status == 200 and events.endswith("data: [DONE]\n\n") and '"usage":{' in events, events


async def test_a_tool_with_null_parameters_is_served_as_one_without(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`"parameters": null` (a tool of no arguments, as some clients write one) was a 400 "must be an object"; vLLM
    reads null as absent, and so does the worker now, constrained calls included. Parameters of another type are
    still a 400."""
    e = await engine("random")
    for choice in ("auto", "required", {"type": "function", "function": {"name": "ping"}}):
        status, done = await _chat(e, tools=[_tool("ping", parameters=None)], tool_choice=choice)
        assert status == 200, (choice, done)
    status, err = await _chat(e, tools=[_tool("ping", parameters="none")])
    assert status == 400 and err["error"]["param"] == "tools", err
