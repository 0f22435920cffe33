"""`thinking` as Anthropic checks it: its three types, and a budget below `max_tokens` unless the interleaved-thinking
beta lets it span the whole turn."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.anthropic_in import parse_request
from router.errors import ApiError
from tests.dialects.conftest import CFG
from tests.dialects.test_messages import anthropic_error, post
from tests.fakes.openai_upstream import Step, completion

INTERLEAVED = "interleaved-thinking-2025-05-14"


def body(thinking: dict[str, Any], max_tokens: int = 2048) -> dict[str, Any]:
    return {"model": "m", "max_tokens": max_tokens, "thinking": thinking,
            "messages": [{"role": "user", "content": "hi"}]}


def refused(doc: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ApiError) as caught:
        parse_request(doc, **kw)
    assert caught.value.status == 400 and caught.value.param == "thinking"
    return caught.value.message


def test_a_budget_at_or_past_max_tokens_is_refused():
    message = refused(body({"type": "enabled", "budget_tokens": 2048}))
    assert message == "`max_tokens` must be greater than `thinking.budget_tokens`."
    refused(body({"type": "enabled", "budget_tokens": 4096}))
    assert parse_request(body({"type": "enabled", "budget_tokens": 2047})).thinking == \
        {"type": "enabled", "budget_tokens": 2047}


def test_interleaved_thinking_lifts_the_bound_and_counting_has_none():
    assert parse_request(body({"type": "enabled", "budget_tokens": 4096}), interleaved=True).thinking is not None
    count = {k: v for k, v in body({"type": "enabled", "budget_tokens": 4096}).items() if k != "max_tokens"}
    assert parse_request(count, count_only=True).thinking is not None


@pytest.mark.parametrize("kind", ["enabled", "disabled", "adaptive"])
def test_the_three_types_pass(kind: str):
    thinking = {"type": kind, "budget_tokens": 1024} if kind == "enabled" else {"type": kind}
    assert parse_request(body(thinking)).thinking == thinking


@pytest.mark.parametrize("kind", ["auto", "on", "Enabled"])
def test_an_unknown_type_is_refused(kind: str):
    message = refused(body({"type": kind}))
    assert message == (f"thinking.type: {kind!r} is not one of the expected types: 'enabled', 'disabled', "
                       "'adaptive'.")


async def test_the_route_reads_the_beta_header(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("hello", "m")))
    r = await router(CFG.format(url=up.url))
    wide = body({"type": "enabled", "budget_tokens": 4096})
    status, doc = await post(r.url, wide)
    assert status == 400
    assert anthropic_error(doc, "invalid_request_error") == \
        "`max_tokens` must be greater than `thinking.budget_tokens`."
    assert up.requests == []
    status, doc = await post(r.url, wide, {"anthropic-beta": f"fine-grained-tool-streaming-2025-05-14,{INTERLEAVED}"})
    assert status == 200 and doc["content"] == [{"type": "text", "text": "hello"}]
    status, doc = await post(r.url, body({"type": "sometimes"}))
    assert status == 400 and anthropic_error(doc, "invalid_request_error").startswith("thinking.type: 'sometimes'")
