"""What Anthropic's Messages API refuses in a conversation's history, refused with its 400s before any upstream is
asked, and what it takes (or what our own answers give a client to send back) still taken."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router.dialects.anthropic_in import parse_request
from router.errors import ApiError
from tests.dialects.conftest import CFG
from tests.dialects.test_messages import anthropic_error

ASK = {"role": "user", "content": "Three colours as a JSON list."}


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [ASK, *messages]}


async def post(url: str, doc: dict[str, Any], path: str = "/v1/messages") -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + path, data=json.dumps(doc).encode(),
                                                    headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


def refused(doc: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_request(doc)
    assert caught.value.status == 400 and caught.value.param == "messages"
    return caught.value


TRAILING = "messages: final assistant content cannot end with trailing whitespace"


@pytest.mark.parametrize("content", ['["red", ', "[\n", "\t", [{"type": "text", "text": '["red",\n'}],
                                     [{"type": "text", "text": "["}, {"type": "text", "text": "red "}]])
def test_a_prefill_ending_in_whitespace_is_refused(content: Any) -> None:
    assert refused(body({"role": "assistant", "content": content})).message == TRAILING


def test_whitespace_before_the_end_or_in_an_earlier_assistant_turn_is_taken() -> None:
    assert parse_request(body({"role": "assistant", "content": '[ "red",'})).prefill
    assert parse_request(body({"role": "assistant", "content": [{"type": "text", "text": "red \n"},
                                                                {"type": "text", "text": "["}]})).prefill
    earlier = parse_request(body({"role": "assistant", "content": "Sure: \n"}, {"role": "user", "content": "go"}))
    assert not earlier.prefill


async def test_the_route_answers_it_as_anthropic_does(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        status, doc = await post(r.url, body({"role": "assistant", "content": "[ "}), path=path)
        assert status == 400 and anthropic_error(doc, "invalid_request_error") == TRAILING
    assert up.requests == []
