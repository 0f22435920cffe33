"""The routes agents call besides the generation ones: model lookups, stored input items, input token counts,
and Anthropic-shaped answers for Anthropic clients."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest
from openai.types.responses import ResponseItem
from pydantic import TypeAdapter

from tests.dialects.conftest import CFG, RESPONSES_WEATHER, claude
from tests.fakes.openai_upstream import Step, completion

PNG = "data:image/png;base64,iVBORw0KGgo="

AV = {"anthropic-version": "2023-06-01"}


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as resp:
        return resp.status, await resp.json()


async def test_model_routes_in_both_shapes(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    assert await get(r.url + "/v1/models/renamed") == \
        (200, {"id": "renamed", "object": "model", "created": 0, "owned_by": "lab"})
    status, doc = await get(r.url + "/v1/models/nope")
    assert status == 404 and doc["error"]["code"] == "model_not_found"
    status, doc = await get(r.url + "/v1/models/nope", AV)
    assert status == 404 and doc["type"] == "error" and doc["error"]["type"] == "not_found_error"
    status, doc = await get(r.url + "/v1/models", AV)
    assert status == 200 and [m["id"] for m in doc["data"]] == ["m", "renamed"] and doc["data"][0]["type"] == "model"
    page = await claude(r.url).models.list()
    assert [m.id for m in page.data] == ["m", "renamed"]
    got = await claude(r.url).models.retrieve("m")
    assert got.id == "m"


async def test_anthropic_routes_answer_unknown_paths_in_anthropic_shape(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    status, doc = await get(r.url + "/v1/messages/batches")
    assert status in (404, 405) and doc["type"] == "error"
    with pytest.raises(anthropic.NotFoundError):
        await claude(r.url).models.retrieve("nope")


async def test_input_items_and_input_tokens(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    resp = await c.responses.create(model="m", input=[{"role": "user", "content": "hello there"}])
    items = await c.responses.input_items.list(resp.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses/input_tokens",
                                                    json={"model": "m", "input": "x" * 400}) as h:
        doc = await h.json()
    assert h.status == 200 and doc["object"] == "response.input_tokens" and 100 <= doc["input_tokens"] <= 140
    status, doc = await get(r.url + "/v1/responses/resp_nope/input_items")
    assert status == 404


async def test_listed_input_items_are_valid_response_items(fakes, router):
    """Every listed item is what the SDK's `ResponseItem` types say, strictly: an earlier answer's output_text part
    (its `annotations`, which the type requires, were left out: the Response itself carries them), its call, the
    call's output, a user's image."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    first = await c.responses.create(model="m", input="one")
    up.push(Step(json=completion("Checking.", "m", tool_calls=[{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}}], finish_reason="tool_calls")))
    second = await c.responses.create(model="m", input="two", previous_response_id=first.id,
                                      tools=[RESPONSES_WEATHER])  # type: ignore[list-item]
    third = await c.responses.create(model="m", previous_response_id=second.id, input=[
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": [{"type": "input_text", "text": "and this?"},
                                     {"type": "input_image", "image_url": PNG, "detail": "auto"}]}])
    status, doc = await get(f"{r.url}/v1/responses/{third.id}/input_items?order=asc")
    assert status == 200
    adapter: TypeAdapter[ResponseItem] = TypeAdapter(ResponseItem)
    items = [adapter.validate_python(item, strict=True) for item in doc["data"]]
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "assistant"), ("message", "user"), ("message", "assistant"),
        ("function_call", None), ("function_call_output", None), ("message", "user")]
    assert doc["data"][1]["content"] == [{"type": "output_text", "text": first.output_text, "annotations": [],
                                          "logprobs": []}]


async def test_listed_input_items_keep_developer_messages_and_reasoning(fakes, router):
    """A `developer` message is listed as one (it was listed as `system`), and a reasoning item sent back is listed
    where it was, its text as the model reads it back (it was left out); every other item keeps the id it had. The
    upstream still gets the developer text in its system message, the reasoning with the assistant message."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    resp = await r.client().responses.create(model="m", input=[  # type: ignore[arg-type]
        {"role": "system", "content": "sys note"},
        {"role": "developer", "content": "dev note"},
        {"role": "user", "content": "look"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}]},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "rainy"},
    ])
    assert up.requests[0].body["messages"][0] == {"role": "system", "content": "sys note\n\ndev note"}
    assert up.requests[0].body["messages"][2]["reasoning_content"] == "thought"
    status, doc = await get(f"{r.url}/v1/responses/{resp.id}/input_items?order=asc")
    assert status == 200
    adapter: TypeAdapter[ResponseItem] = TypeAdapter(ResponseItem)
    items = [adapter.validate_python(item, strict=True) for item in doc["data"]]
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "system"), ("message", "developer"), ("message", "user"), ("reasoning", None),
        ("function_call", None), ("function_call_output", None)]
    assert doc["data"][3]["content"] == [{"type": "reasoning_text", "text": "thought"}]
    ids = [i["id"] for i in doc["data"]]
    assert len(set(ids)) == len(ids)
    [the_reasoning] = [i for i in doc["data"] if i["type"] == "reasoning"]
    again = await r.client().responses.create(model="m", input=[
        {"type": "item_reference", "id": i} for i in ids[2:]])  # type: ignore[misc]
    assert up.requests[-1].body["messages"] == up.requests[0].body["messages"][1:]
    assert again.status == "completed" and the_reasoning["id"].startswith("rs_")


@pytest.mark.parametrize("limit", ["%C2%B2", "%E2%91%A0", "%D9%A3", "0", "101", "-1", "abc", "", "9" * 5000])
async def test_a_bad_input_items_limit_is_400(fakes, router, limit):
    """`limit` is 1 to 100 in ASCII digits; anything else is a 400 naming it (a Unicode digit such as '²' or '①',
    which str.isdigit accepts and int() refuses, was a 500)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    resp = await r.client().responses.create(model="m", input="hello")
    status, doc = await get(f"{r.url}/v1/responses/{resp.id}/input_items?limit={limit}")
    assert status == 400 and doc["error"]["type"] == "invalid_request_error" and doc["error"]["param"] == "limit"
    status, doc = await get(f"{r.url}/v1/responses/{resp.id}/input_items?limit=1")
    assert status == 200 and len(doc["data"]) == 1


@pytest.mark.parametrize("order", ["ascending", "ASC", ""])
async def test_a_bad_input_items_order_is_400(fakes, router, order):
    """`order` is `asc` or `desc` (the default, when absent); anything else is a 400 naming it, as OpenAI answers an
    enum value it does not know (it was read as `desc`: a client asking for oldest first got newest first)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    resp = await r.client().responses.create(model="m", input="hello")
    status, doc = await get(f"{r.url}/v1/responses/{resp.id}/input_items?order={order}")
    assert status == 400 and doc["error"]["type"] == "invalid_request_error" and doc["error"]["param"] == "order"
    for good in ("asc", "desc"):
        status, doc = await get(f"{r.url}/v1/responses/{resp.id}/input_items?order={good}")
        assert status == 200 and len(doc["data"]) == 1


async def test_input_tokens_counts_the_stored_history_of_the_keys_own_response(fakes, router):
    """With client keys, `previous_response_id` names a response stored under the key's identity: its history is
    counted; another key's response is not found, as `POST /v1/responses` answers (it was counted as no history)."""
    up = await fakes()
    r = await router("server: {api_keys: [{key: sk-team-key-1, name: team}, {key: sk-other-key-2, name: other}]}\n"
                     + CFG.format(url=up.url))
    resp = await r.client("sk-team-key-1").responses.create(model="m", input="y" * 4000)

    async def count(key: str, body: dict) -> int:
        async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses/input_tokens", json=body,
                                                        headers={"Authorization": f"Bearer {key}"}) as h:
            doc = await h.json()
            if h.status != 200:
                assert h.status == 400 and doc["error"]["code"] == "previous_response_not_found"
                return -1
            return int(doc["input_tokens"])

    alone = await count("sk-team-key-1", {"model": "m", "input": "x"})
    continued = {"model": "m", "input": "x", "previous_response_id": resp.id}
    assert await count("sk-team-key-1", continued) >= alone + 900  # the 4000-byte turn is counted
    assert await count("sk-other-key-2", continued) == -1  # another key's response is not read
    assert await count("sk-team-key-1", {**continued, "previous_response_id": "resp_nope"}) == -1
