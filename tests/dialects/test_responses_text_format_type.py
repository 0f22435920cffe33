"""`text.format.type` of another JSON type than a string is OpenAI's `invalid_type` naming it, as the route's other
type errors are (it was `invalid_value`, quoting the Python repr of what came)."""

from __future__ import annotations

import pytest

from tests.dialects.conftest import CFG
from tests.dialects.test_responses_request_bounds import _refused


@pytest.mark.parametrize(("kind", "got"), [(5, "an integer"), (True, "a boolean"), (["json_schema"], "an array"),
                                           ({"type": "text"}, "an object"), (1.5, "a number")])
async def test_a_format_type_of_another_type_is_invalid_type(fakes, router, kind: object, got: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, {"model": "m", "input": "x", "text": {"format": {"type": kind}}})
    assert err == {"message": f"Invalid type for 'text.format.type': expected a string, but got {got} instead.",
                   "type": "invalid_request_error", "param": "text.format.type", "code": "invalid_type"}
    assert not up.requests
