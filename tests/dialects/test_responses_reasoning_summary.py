"""`reasoning.summary` takes what OpenAI takes: "auto", "concise" or "detailed" (or null). Any other string was taken
and echoed in the Response; it is OpenAI's 400 naming the field now. Codex leaves the field out for no summaries
(its config value "none"), and the openai SDK's type allows the three values only; Codex before December 2025 sent
"none", which is taken as no summary."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from openai.types.responses import Response

from tests.dialects.conftest import CFG
from tests.fakes.openai_upstream import Step, completion


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        doc: dict[str, Any] = await resp.json()
        return resp.status, doc


@pytest.mark.parametrize("summary", ["auto", "concise", "detailed", None, "none"])
async def test_openai_s_values_are_taken_and_echoed(fakes, router, summary: str | None) -> None:
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    r = await router(CFG.format(url=up.url))
    status, doc = await _post(r.url, {"model": "m", "input": "hi", "store": False,
                                      "reasoning": {"effort": "medium", "summary": summary}})
    assert status == 200, doc
    # "none" (no summary) is echoed as null, which the openai SDK's type takes (it has the three values or null)
    assert doc["reasoning"] == {"effort": "medium", "summary": None if summary == "none" else summary}
    assert up.requests[0].body["reasoning_effort"] == "medium"
    Response.model_validate(doc)  # strict: every literal as the SDK types it


async def test_codex_s_reasoning_without_a_summary_is_taken(fakes, router):
    """Codex with `model_reasoning_summary = "none"`: `reasoning` holds the effort alone."""
    up = await fakes()
    up.push(Step(json=completion("Hello", "m")))
    r = await router(CFG.format(url=up.url))
    status, doc = await _post(r.url, {"model": "m", "input": "hi", "store": False, "reasoning": {"effort": "high"},
                                      "include": ["reasoning.encrypted_content"]})
    assert status == 200, doc
    assert doc["reasoning"] == {"effort": "high", "summary": None}


@pytest.mark.parametrize("summary", ["brief", "", "AUTO", "None", "x" * 1000])
async def test_another_value_is_openai_s_400(fakes, router, summary: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    status, doc = await _post(r.url, {"model": "m", "input": "hi", "reasoning": {"summary": summary}})
    assert status == 400, doc
    err = doc["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", "reasoning.summary",
                                                        "invalid_value"), err
    assert err["message"] == (f"Invalid value: {summary[:40]!r}. Supported values are: 'auto', 'concise', and "
                              "'detailed'."), err
    assert not up.requests
