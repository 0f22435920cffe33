"""A Messages history whose tool calls and results do not pair up is refused as Anthropic refuses it: every
`tool_use` of an assistant turn answered by a `tool_result` in the message right after it, and every `tool_result`
naming a `tool_use` of the message right before it."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.anthropic_in import parse_request
from router.errors import ApiError
from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG
from tests.dialects.test_messages import anthropic_error, post
from tests.fakes.openai_upstream import Step, completion

ASK = {"role": "user", "content": "Weather in Paris and Oslo?"}


def use(call_id: str, city: str = "Paris") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": city}}


def result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "tools": [ANTHROPIC_WEATHER], "messages": [ASK, *messages]}


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as caught:
        parse_request(doc)
    assert caught.value.status == 400
    return caught.value.message


def test_a_call_without_its_result_names_the_turn_and_the_ids():
    message = refused(body({"role": "assistant", "content": [use("toolu_a"), use("toolu_b", "Oslo")]},
                           {"role": "user", "content": [result("toolu_a")]}))
    assert message == ("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
                       "toolu_b. Each `tool_use` block must have a corresponding `tool_result` block in the next "
                       "message.")


def test_a_call_followed_by_text_only_or_another_assistant_turn():
    calls = {"role": "assistant", "content": [use("toolu_a")]}
    assert refused(body(calls, {"role": "user", "content": "never mind"})).startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_a.")
    assert refused(body(calls, {"role": "assistant", "content": "so"}, {"role": "user", "content": "ok"})) \
        .startswith("messages.1: `tool_use` ids")


def test_a_result_for_no_call_of_the_turn_before_names_its_block():
    message = refused(body({"role": "assistant", "content": [use("toolu_a")]},
                           {"role": "user", "content": [result("toolu_a"), result("toolu_zz")]}))
    assert message == ("messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_zz. "
                       "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
    first = refused({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [result("toolu_q")]}]})
    assert first.startswith("messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_q.")
    late = refused(body({"role": "assistant", "content": [use("toolu_a")]},
                        {"role": "user", "content": [result("toolu_a")]},
                        {"role": "assistant", "content": "done"},
                        {"role": "user", "content": [result("toolu_a")]}))
    assert late.startswith("messages.4.content.0: unexpected `tool_use_id`")


def test_paired_loops_pass():
    req = parse_request(body({"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                                               use("toolu_a"), use("toolu_b", "Oslo")]},
                             {"role": "user", "content": [result("toolu_b"), result("toolu_a"),
                                                          {"type": "text", "text": "and?"}]},
                             {"role": "assistant", "content": "Sunny in both."},
                             {"role": "user", "content": "thanks"}))
    assert [m["role"] for m in req.chat["messages"]] == ["user", "assistant", "tool", "tool", "user", "assistant",
                                                         "user"]


async def test_the_route_answers_anthropics_400_and_calls_no_upstream(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("unused", "m")))
    r = await router(CFG.format(url=up.url))
    status, doc = await post(r.url, body({"role": "assistant", "content": [use("toolu_a")]},
                                         {"role": "user", "content": "go on"}))
    assert status == 400
    assert anthropic_error(doc, "invalid_request_error").startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_a.")
    assert up.requests == []
