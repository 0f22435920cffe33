"""`text.format` of a Responses request: a 400 names the very field at fault, as OpenAI names it."""

from __future__ import annotations

import aiohttp
import pytest

from tests.dialects.conftest import CFG

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


@pytest.mark.parametrize(("fmt", "param", "code"), [
    # (OpenAI: "Missing required parameter: 'text.format.name'.", param text.format.name; both were `text`)
    ({"type": "json_schema", "schema": SCHEMA}, "text.format.name", "missing_required_parameter"),
    ({"type": "json_schema", "name": "a"}, "text.format.schema", "missing_required_parameter"),
    ({"type": "json_schema", "name": 5, "schema": SCHEMA}, "text.format.name", "invalid_type"),
    ({"type": "json_schema", "name": "a", "schema": []}, "text.format.schema", "invalid_type"),
    # (went on as it came: an OpenAI upstream refused it naming `response_format.json_schema.name`, a field the
    # client never sent; an engine took it)
    ({"type": "json_schema", "name": "my schema", "schema": SCHEMA}, "text.format.name", "invalid_value"),
    ({"type": "json_schema", "name": "n" * 65, "schema": SCHEMA}, "text.format.name", "invalid_value"),
    ({"type": "xml"}, "text.format.type", "invalid_value"),
    ({"name": "a"}, "text.format.type", "missing_required_parameter"),
    ("json", "text.format", "invalid_type"),
])
async def test_a_bad_text_format_names_its_field(fakes, router, fmt, param, code):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "x", "text": {"format": fmt}}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 400
        err = (await resp.json())["error"]
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error"), err
    assert param in err["message"] or "Invalid value" in err["message"], err
    assert not up.requests


async def test_a_json_schema_name_of_64_word_characters_reaches_the_upstream(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    name = "Answer_v-1" + "n" * 54
    body = {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": name, "schema": SCHEMA}}}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 200
    assert up.requests[0].body["response_format"]["json_schema"]["name"] == name
