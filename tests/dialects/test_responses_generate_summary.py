"""`reasoning.generate_summary`, the deprecated name of `reasoning.summary`: held to the same values (another is
OpenAI's 400 naming it; it was taken unchecked) and taken as `summary` where that is absent (it was dropped)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG
from tests.dialects.test_responses_request_bounds import _refused
from tests.fakes.openai_upstream import Step, completion


async def _answered(url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        assert resp.status == 200, await resp.text()
        doc: dict[str, Any] = await resp.json()
        return doc


@pytest.mark.parametrize("value", ["auto", "concise", "detailed"])
async def test_it_is_taken_as_summary_where_that_is_absent(fakes, router, value: str) -> None:
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    r = await router(CFG.format(url=up.url))
    doc = await _answered(r.url, {"model": "m", "input": "hi", "store": False,
                                  "reasoning": {"effort": "low", "generate_summary": value}})
    assert doc["reasoning"] == {"effort": "low", "summary": value}
    assert up.requests[0].body["reasoning_effort"] == "low"


async def test_summary_wins_over_it(fakes, router) -> None:
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    r = await router(CFG.format(url=up.url))
    doc = await _answered(r.url, {"model": "m", "input": "hi", "store": False,
                                  "reasoning": {"summary": "concise", "generate_summary": "detailed"}})
    assert doc["reasoning"]["summary"] == "concise"


@pytest.mark.parametrize(("value", "message", "code"), [
    ("brief", "Invalid value: 'brief'. Supported values are: 'auto', 'concise', and 'detailed'.", "invalid_value"),
    ("AUTO", "Invalid value: 'AUTO'. Supported values are: 'auto', 'concise', and 'detailed'.", "invalid_value"),
    (5, "Invalid type for 'reasoning.generate_summary': expected a string, but got an integer instead.",
     "invalid_type"),
])
async def test_another_value_is_openai_s_400_naming_it(fakes, router, value: object, message: str,
                                                       code: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for reasoning in ({"generate_summary": value}, {"summary": "auto", "generate_summary": value}):
        err = await _refused(r.url, {"model": "m", "input": "hi", "reasoning": reasoning})
        assert (err["param"], err["code"], err["message"]) == ("reasoning.generate_summary", code, message), err
    assert not up.requests
