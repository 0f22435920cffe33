"""A final assistant message (a prefill) asks Anthropic to continue it: the answer goes on from its last word and
does not repeat it. An OpenAI-type API answers a new turn instead, so a translated route that may reach one refuses it
as Anthropic refuses it for its models that cannot, rather than answer what a prefill client would splice into
nonsense (our MLX engine continues one: tests/dialects/test_engine.py). An empty one asks for nothing and goes."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.dialects.conftest import CFG
from tests.dialects.test_messages import anthropic_error, post
from tests.fakes.openai_upstream import Step, completion

ASK = {"role": "user", "content": "Three colours as a JSON list."}


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [ASK, *messages]}


async def test_a_prefill_is_refused_and_reaches_no_upstream(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for prefill in ("[", [{"type": "text", "text": '["red",'}]):
        status, doc = await post(r.url, body({"role": "assistant", "content": prefill}))
        assert status == 400
        assert anthropic_error(doc, "invalid_request_error") == (
            "This model does not support assistant message prefill: its backend starts a new answer instead of "
            "continuing the last assistant message. The conversation must end with a user message.")
    assert up.requests == []


async def test_an_empty_final_assistant_message_is_left_out(fakes, router):
    up = await fakes()
    up.push(Step(json=completion('["red"]', "m")))
    up.push(Step(json=completion('["red"]', "m")))
    r = await router(CFG.format(url=up.url))
    for empty in ("", []):
        status, doc = await post(r.url, body({"role": "assistant", "content": empty}))
        assert status == 200 and doc["content"] == [{"type": "text", "text": '["red"]'}]
    assert [req.body["messages"] for req in up.requests] == [[ASK], [ASK]]


async def test_a_prefill_is_still_counted(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages/count_tokens",
                                                    json=body({"role": "assistant", "content": "["})) as resp:
        assert resp.status == 200 and (await resp.json())["input_tokens"] > 0
