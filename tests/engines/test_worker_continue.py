"""A final assistant message continued (vLLM's `continue_final_message`): the prompt ends with the assistant's partial
text, without its end of turn, and the answer carries only what the model adds to it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engines.wire import WireError
from engines.worker.params import parse_chat
from engines.worker.templates import ChatFormatter
from tests.engines.conftest import WEATHER_TOOL

ASK = {"role": "user", "content": "hi"}
THOUGHT = "<think>\nThe user says hello, so I greet them back.\n</think>\n\n"


def _chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"messages": [ASK, *messages], "max_tokens": 64, "temperature": 0, **fields}


def _prefill(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


@pytest.mark.parametrize(("body", "message"), [
    (_chat(_prefill("Hi"), continue_final_message=True, add_generation_prompt=True),
     "Cannot set both `continue_final_message` and `add_generation_prompt` to True."),
    (_chat(continue_final_message=True),
     "'continue_final_message' continues the last message, which must be the assistant's; it is the user's"),
    (_chat({"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]},
           continue_final_message=True),
     "'continue_final_message' cannot continue an assistant message with 'tool_calls'; its text is what is "
     "continued"),
    (_chat(continue_final_message="yes"),
     "Invalid type for 'continue_final_message': expected a boolean, but got a string instead."),
    (_chat(add_generation_prompt=1),
     "Invalid type for 'add_generation_prompt': expected a boolean, but got an integer instead."),
])
def test_vllm_checks_of_the_generation_flags(body: dict[str, Any], message: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_chat(body, 512)
    assert caught.value.status == 400 and message in caught.value.message


def test_the_flags_default_as_vllm_reads_them() -> None:
    plain = parse_chat(_chat(), 512)
    assert (plain.generation_prompt, plain.continue_final) == (True, False)
    # continue_final_message alone leaves the generation prompt out: the two cannot both hold
    cont = parse_chat(_chat(_prefill("Hi"), continue_final_message=True), 512)
    assert (cont.generation_prompt, cont.continue_final) == (False, True)
    bare = parse_chat(_chat(add_generation_prompt=False), 512)
    assert (bare.generation_prompt, bare.continue_final) == (False, False)


async def test_a_final_assistant_message_is_continued(engine) -> None:
    """The scripted model goes on from the prefill's last piece: the answer is the rest of its script, streamed or
    not; the prompt reuses the prefix cache of the answer it continues; a prefill that leaves `<think>` open is
    continued as reasoning."""
    e = await engine("think")
    plain = await e.client().chat.completions.create(model="think", messages=[ASK], max_tokens=64, temperature=0)
    assert plain.choices[0].message.content == "Hello! How can I help you today?"

    body = _chat(_prefill(THOUGHT + "Hello! How "), continue_final_message=True, add_generation_prompt=False)
    status, doc = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 200, doc
    message = doc["choices"][0]["message"]
    assert message["content"] == "can I help you today?" and not message.get("reasoning_content")
    assert doc["choices"][0]["finish_reason"] == "stop"
    usage = doc["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= usage["prompt_tokens"] - 1  # the first answer's cache

    stream = await e.client().chat.completions.create(
        model="think", messages=body["messages"], max_tokens=64, temperature=0, stream=True,
        extra_body={"continue_final_message": True, "add_generation_prompt": False})
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "can I help you today?"

    thinking = _chat(_prefill("<think>\nThe user says "), continue_final_message=True)
    status, doc = await e.post_raw("/v1/chat/completions", json.dumps(thinking).encode())
    assert status == 200, doc
    message = doc["choices"][0]["message"]
    assert message["reasoning_content"] == "hello, so I greet them back."
    assert message["content"] == "Hello! How can I help you today?"


async def test_a_prefill_that_opens_a_tool_call_is_continued_as_text(engine) -> None:
    """The call's start is in the prefill, not in the answer: the continuation is text, as vLLM answers it (its tool
    parser reads the generated text only), never a call made of half of one."""
    e = await engine("tool")
    body = _chat(_prefill('<tool_call>\n{"name": '), continue_final_message=True, tools=[WEATHER_TOOL])
    status, doc = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 200, doc
    choice = doc["choices"][0]
    assert choice["message"]["content"] == '"get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert not choice["message"].get("tool_calls") and choice["finish_reason"] == "stop"


class _NoTemplate:
    """A tokenizer without a chat template, whose tokens are the text's bytes."""

    has_chat_template = False

    def encode(self, text: str, **_: Any) -> list[int]:
        return list(text.encode())


@pytest.mark.parametrize(("flags", "text"), [
    ({}, "user: hi\nassistant: Sunny in\nassistant:"),
    ({"generation": False}, "user: hi\nassistant: Sunny in\n"),
    ({"generation": False, "continue_final": True}, "user: hi\nassistant: Sunny in"),
])
def test_a_model_without_a_chat_template_continues_the_last_line(flags: dict[str, bool], text: str) -> None:
    formatter = ChatFormatter(_NoTemplate())
    rendered = formatter.render_chat([ASK, _prefill("Sunny in")], None, **flags)
    assert bytes(rendered.tokens).decode() == text


async def test_a_forced_call_is_held_from_the_continuations_start(engine) -> None:
    """As vLLM constrains a continuation: a grammar holds what the model adds, so a call forced by `tool_choice`
    after a prefill of text is a whole call of its own."""
    e = await engine("tool")
    body = _chat(_prefill("Let me check."), continue_final_message=True, tools=[WEATHER_TOOL], tool_choice="required")
    status, doc = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 200, doc
    calls = doc["choices"][0]["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
