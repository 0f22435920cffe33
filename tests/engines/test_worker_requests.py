"""Requests the worker refuses as OpenAI and vLLM refuse them (an empty assistant turn, parameters outside what the
API allows), and an output limit past the context, which it cuts to what fits instead."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.engines.conftest import Engine

HI = [{"role": "user", "content": "hi"}]
CONTEXT = 64


async def _post(e: Engine, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await e.post_raw(path, json.dumps(body).encode())


async def test_an_output_limit_past_the_context_is_cut_to_it(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`max_tokens` (or `max_completion_tokens`) that the context cannot hold beside the prompt is cut to what it
    can, not refused (OpenAI and vLLM answer 400): agent clients ask for limits past a local model's context."""
    e = await engine("random", max_context=CONTEXT)
    for name in ("max_tokens", "max_completion_tokens"):
        status, done = await _post(e, "/v1/chat/completions", {"messages": HI, name: CONTEXT * 10})
        assert status == 200 and done["usage"]["total_tokens"] <= CONTEXT, done
    status, done = await _post(e, "/v1/completions", {"prompt": [5, 6, 7], "max_tokens": CONTEXT * 10})
    assert status == 200 and done["usage"]["total_tokens"] <= CONTEXT, done


async def test_a_default_output_limit_is_cut_to_the_context(engine: Callable[..., Awaitable[Engine]]) -> None:
    """The limits the worker fills in itself (16 for a completion, the rest of the context for a chat) are no
    client's request: a prompt that leaves less room is served, not refused."""
    e = await engine("random", max_context=CONTEXT)
    status, done = await _post(e, "/v1/completions", {"prompt": list(range(5, 5 + CONTEXT - 4))})
    assert status == 200 and done["usage"]["completion_tokens"] <= 4, done
    status, done = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": None})
    assert status == 200 and done["usage"]["total_tokens"] <= CONTEXT, done


async def test_an_assistant_turn_with_neither_content_nor_calls_is_a_400(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """`{"role": "assistant", "content": null}` without tool calls was rendered as an empty turn; OpenAI answers 400
    (an assistant's content is required unless it makes calls). A turn with calls, text, a refusal or reasoning is
    served."""
    e = await engine("random")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    for turn in ({"role": "assistant", "content": None}, {"role": "assistant"},
                 {"role": "assistant", "content": None, "tool_calls": []}):
        status, err = await _post(e, "/v1/chat/completions", {"messages": [*HI, turn, *HI], "max_tokens": 1})
        assert status == 400, err
        assert err["error"]["param"] == "messages" and err["error"]["code"] == "invalid_value", err
        assert "'messages[1].content'" in err["error"]["message"] and "tool_calls" in err["error"]["message"], err
    for turn in ({"role": "assistant", "content": ""}, {"role": "assistant", "content": None, "refusal": "No."},
                 {"role": "assistant", "content": None, "reasoning_content": "Thinking."},
                 {"role": "assistant", "content": None, "tool_calls": [call]}):
        rest = [{"role": "tool", "tool_call_id": "c1", "content": "ok"}] if "tool_calls" in turn else HI
        status, done = await _post(e, "/v1/chat/completions", {"messages": [*HI, turn, *rest], "max_tokens": 1})
        assert status == 200, (turn, done)


async def test_nan_and_infinity_are_not_json(engine: Callable[..., Awaitable[Engine]]) -> None:
    """Python's parser reads NaN, Infinity and a number past a double (as inf) where JSON has none: a schema's
    `"maximum": Infinity` then compiled no grammar and the reply was decoded unconstrained. Refused as the router
    refuses them; OpenAI answers such a body 400 too."""
    e = await engine("random")
    schema = '{"type": "object", "properties": {"a": {"type": "number", "maximum": VALUE}}}'
    for value in ("NaN", "Infinity", "-Infinity", "1e400"):
        for path, body in (
            ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, '
                                     '"response_format": {"type": "json_schema", "json_schema": {"name": "s", '
                                     '"schema": ' + schema.replace("VALUE", value) + "}}}"),
            ("/v1/completions", '{"prompt": "hi", "max_tokens": 1, "temperature": ' + value + "}"),
        ):
            status, err = await e.post_raw(path, body.encode())
            assert status == 400 and err["error"]["code"] == "invalid_json", (value, err)
    status, _ = await e.post_raw("/v1/completions", b'{"prompt": "hi", "max_tokens": 1, "temperature": 1e300}')
    assert status == 400  # a finite number, out of range: named as such


async def test_logprob_fields_are_checked_before_they_are_refused(engine: Callable[..., Awaitable[Engine]]) -> None:
    """Any `top_logprobs` but 0 was answered "logprobs are not supported" under `logprobs`, a -1 or a 100 too, and a
    `logprobs` of any type: each field is now checked as OpenAI bounds it (chat: a boolean and 0..20; completions:
    0..5), named by its own param, before the engine says it has no logprobs."""
    e = await engine("random")
    for path, extra, param, code in (
        ("/v1/chat/completions", {"top_logprobs": -1}, "top_logprobs", "invalid_value"),
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", "invalid_value"),
        ("/v1/chat/completions", {"top_logprobs": "3"}, "top_logprobs", "invalid_type"),
        ("/v1/chat/completions", {"logprobs": "yes"}, "logprobs", "invalid_type"),
        ("/v1/chat/completions", {"logprobs": True}, "logprobs", "unsupported_parameter"),
        ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs", "unsupported_parameter"),
        ("/v1/completions", {"logprobs": -1}, "logprobs", "invalid_value"),
        ("/v1/completions", {"logprobs": 6}, "logprobs", "invalid_value"),
        ("/v1/completions", {"logprobs": "1"}, "logprobs", "invalid_type"),
        ("/v1/completions", {"logprobs": 1}, "logprobs", "unsupported_parameter"),
    ):
        ask = {"messages": HI} if "chat" in path else {"prompt": "hi"}
        status, err = await _post(e, path, {**ask, "max_tokens": 1, **extra})
        assert status == 400 and (err["error"]["param"], err["error"]["code"]) == (param, code), (extra, err)
    for path, ask in (("/v1/chat/completions", {"messages": HI, "logprobs": False, "top_logprobs": 0}),
                      ("/v1/completions", {"prompt": "hi", "logprobs": 0}),
                      ("/v1/completions", {"prompt": "hi", "logprobs": None})):
        status, done = await _post(e, path, {**ask, "max_tokens": 1})
        assert status == 200, done


async def test_a_json_schema_format_without_a_name_is_a_400(engine: Callable[..., Awaitable[Engine]]) -> None:
    """OpenAI and vLLM require `response_format.json_schema.name`; it was served without one."""
    e = await engine("random")
    schema = {"type": "object"}
    for spec in ({"schema": schema}, {"name": 5, "schema": schema}, {"name": "", "schema": schema}):
        fmt = {"type": "json_schema", "json_schema": spec}
        status, err = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": 1, "response_format": fmt})
        assert status == 400 and err["error"]["param"] == "response_format.json_schema.name", err
        assert "response_format.json_schema.name" in err["error"]["message"], err
    fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    status, done = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": 1, "response_format": fmt})
    assert status == 200, done


async def test_a_json_schema_name_outside_openais_rule_is_a_400(engine: Callable[..., Awaitable[Engine]]) -> None:
    """OpenAI holds `response_format.json_schema.name` to a-z, A-Z, 0-9, `_` and `-`, at most 64 characters, and
    answers a 400 naming the field (vLLM takes any string); a name with spaces, dots or 65 characters was served."""
    e = await engine("random")
    schema = {"type": "object"}
    for name, code in (("my reply", "invalid_value"), ("reply.v1", "invalid_value"), ("réponse", "invalid_value"),
                       ("reply\n", "invalid_value"), ("r" * 65, "string_above_max_length")):
        fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        status, err = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": 1, "response_format": fmt})
        assert status == 400, (name, err)
        assert (err["error"]["param"], err["error"]["code"]) == ("response_format.json_schema.name", code), err
        assert err["error"]["message"].startswith("Invalid 'response_format.json_schema.name': "), err
    for name in ("r" * 64, "Reply_v-1", "0"):
        fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        status, done = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": 1, "response_format": fmt})
        assert status == 200, (name, done)


async def test_a_legacy_function_call_in_the_history_is_refused_not_dropped(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """An assistant message's `function_call` (the API before tool calls) was dropped from the prompt without a word,
    so the model never saw the call it made; the engine reads `tool_calls` only, as it refuses `functions` and
    `function_call` in the request."""
    e = await engine("random")
    for content in ("Calling f.", None):
        turn = {"role": "assistant", "content": content, "function_call": {"name": "f", "arguments": "{}"}}
        status, err = await _post(e, "/v1/chat/completions", {"messages": [*HI, turn, *HI], "max_tokens": 1})
        assert status == 400, err
        assert (err["error"]["param"], err["error"]["code"]) == ("messages", "unsupported_parameter"), err
        assert "messages[1]" in err["error"]["message"] and "tool_calls" in err["error"]["message"], err
    turn = {"role": "assistant", "content": "Done.", "function_call": None}
    status, done = await _post(e, "/v1/chat/completions", {"messages": [*HI, turn, *HI], "max_tokens": 1})
    assert status == 200, done


async def test_logit_bias_keys_are_bounded_by_the_vocabulary(engine: Callable[..., Awaitable[Engine]],
                                                             tiny_models: dict[str, Path]) -> None:
    """OpenAI takes token ids (decimal digits) to biases from -100 to 100; with no limit on the number of keys, one
    request could hold millions, each checked in turn (`"01"`, `"001"`, ... all named token 1, and a key of 5000
    digits was a ValueError out of int(), a 500). A key is a token id as written by the tokenizer (no leading zero),
    and an object with more keys than the vocabulary has tokens is refused before any key is read (the error says
    so, rather than naming the first key outside the vocabulary, the last one here)."""
    e = await engine("random")
    vocab = json.loads((tiny_models["random"] / "config.json").read_text())["vocab_size"]
    for bias, said in (({"01": 1}, "'logit_bias' key '01' is not a token id"),
                       ({"00": 1}, "'logit_bias' key '00' is not a token id"),
                       ({"1" * 5000: 1}, "'logit_bias' token id '111111111111111111111111'… is outside the vocabulary"),
                       ({str(i): 1 for i in range(vocab + 1)},
                        f"'logit_bias' may hold at most {vocab} token ids (the model's vocabulary size); it holds "
                        f"{vocab + 1}")):
        status, err = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": 1, "logit_bias": bias})
        assert status == 400 and err["error"]["param"] == "logit_bias", err
        assert said in err["error"]["message"] and len(err["error"]["message"]) < 200, err
    every = {str(i): -1 for i in range(vocab)}
    for bias in ({"0": 100, "5": -100}, every):
        status, done = await _post(e, "/v1/chat/completions", {"messages": HI, "max_tokens": 1, "logit_bias": bias})
        assert status == 200, done
