"""A Responses request without `model` (absent, null or empty) or without `input`: OpenAI's 400 for a missing
parameter, "Missing required parameter: '<name>'." with `code` missing_required_parameter (the router's own
`missing_field` was no code OpenAI answers); a `model` of another type stays `invalid_type`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dialects.conftest import CFG
from tests.dialects.test_responses_request_bounds import _refused


@pytest.mark.parametrize("body", [{"input": "hi"}, {"model": None, "input": "hi"}, {"model": "", "input": "hi"}])
async def test_a_request_without_model_is_openai_s_missing_parameter(fakes, router, body: dict[str, Any]) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, body)
    assert err == {"message": "Missing required parameter: 'model'.", "type": "invalid_request_error",
                   "param": "model", "code": "missing_required_parameter"}
    assert not up.requests


async def test_a_request_without_input_is_openai_s_missing_parameter(fakes, router) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, {"model": "m"})
    assert err == {"message": "Missing required parameter: 'input'.", "type": "invalid_request_error",
                   "param": "input", "code": "missing_required_parameter"}
    assert not up.requests


async def test_a_model_of_another_type_is_invalid_type(fakes, router) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, {"model": 5, "input": "hi"})
    assert err == {"message": "Invalid type for 'model': expected a string, but got an integer instead.",
                   "type": "invalid_request_error", "param": "model", "code": "invalid_type"}
    assert not up.requests
