"""The shapes of a Responses request's `input` items: a malformed one is a 400 that says what is wrong with it."""

from __future__ import annotations

import aiohttp
import pytest

from tests.dialects.conftest import CFG


def _user(*parts: object) -> dict[str, object]:
    return {"type": "message", "role": "user", "content": list(parts)}


@pytest.mark.parametrize(("item", "param", "code"), [
    # (each was "content part type 'input_text' is not supported here": the type is, its text was missing)
    (_user({"type": "input_text"}), "input[0].content[0].text", "missing_required_parameter"),
    (_user({"type": "input_text", "text": "a"}, {"type": "input_text", "text": 5}), "input[0].content[1].text",
     "invalid_type"),
    ({"type": "message", "role": "assistant", "content": [{"type": "output_text"}]}, "input[0].content[0].text",
     "missing_required_parameter"),
    ({"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": None}]},
     "input[0].content[0].refusal", "missing_required_parameter"),
])
async def test_a_text_part_without_its_text_is_a_400_naming_it(fakes, router, item, param, code):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": [item]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 400
        err = (await resp.json())["error"]
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error"), err
    assert param in err["message"] and "not supported" not in err["message"], err
    assert not up.requests
