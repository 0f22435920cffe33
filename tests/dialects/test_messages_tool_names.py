"""A tools list that declares a name twice is refused as Anthropic refuses it ("tools: Tool names must be unique."),
whatever kind of tool each is: the model, and the calls it makes, could not tell them apart."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.anthropic_in import Translations, parse_request
from router.errors import ApiError
from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG
from tests.dialects.test_messages import anthropic_error, post

BASH = {"type": "bash_20250124", "name": "bash"}
SEARCH = {"type": "web_search_20250305", "name": "web_search"}


def body(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 8, "tools": tools, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("tools", [
    [ANTHROPIC_WEATHER, ANTHROPIC_WEATHER],
    [BASH, {"name": "bash", "input_schema": {"type": "object"}}],
    [SEARCH, {"name": "web_search", "input_schema": {"type": "object"}}],
])
def test_a_name_declared_twice_is_refused_every_time(tools: list[dict[str, Any]]):
    memos = Translations()
    for _ in range(2):
        with pytest.raises(ApiError) as caught:
            parse_request(body(tools), memos)
        assert caught.value.status == 400 and caught.value.param == "tools"
        name = tools[1]["name"]
        assert caught.value.message == f"tools: Tool names must be unique ({name!r} is declared twice)."


def test_distinct_names_pass():
    assert len(parse_request(body([ANTHROPIC_WEATHER, BASH, SEARCH])).chat["tools"]) == 2


async def test_the_route_answers_400_and_calls_no_upstream(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    status, doc = await post(r.url, body([ANTHROPIC_WEATHER, ANTHROPIC_WEATHER]))
    assert status == 400 and anthropic_error(doc, "invalid_request_error").startswith(
        "tools: Tool names must be unique")
    assert up.requests == []
