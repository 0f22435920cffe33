"""Anthropic's error bodies name their request at the top level (`{"type": "error", "error": {...}, "request_id":
...}`), in a stream's error event too; the Messages routes' errors do, with the id of their `request-id` header."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from router.api.messages_native import NativeEvents
from router.dialects.anthropic_in import MessagesStream
from router.errors import ApiError
from tests.dialects.conftest import CFG, claude
from tests.fakes.openai_upstream import Step, stream_of

ASK = [{"role": "user", "content": "hi"}]


async def post(url: str, path: str, data: bytes, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as s, s.post(url + path, data=data, headers={
            "Content-Type": "application/json", **(headers or {})}) as resp:
        await resp.read()
        return resp


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_a_refused_body_names_its_request(fakes, router, path):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + path, data=b'{"model": "m", "messages": "no"}',
                          headers={"Content-Type": "application/json"}) as resp:
            doc = await resp.json()
            assert resp.status == 400
            rid = resp.headers["request-id"]
            assert rid == resp.headers["x-request-id"]
        assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
        assert doc["request_id"] == rid
        async with s.post(r.url + path, json={"model": "nope", "max_tokens": 5, "messages": ASK},
                          headers={"x-request-id": "req_given-1"}) as resp:
            assert resp.status == 404 and (await resp.json())["request_id"] == "req_given-1"
            assert resp.headers["request-id"] == "req_given-1"


async def test_the_sdk_reads_the_request_id_of_an_error(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    with pytest.raises(anthropic.NotFoundError) as nf:
        await claude(r.url).messages.create(model="nope", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert nf.value.request_id and nf.value.body["request_id"] == nf.value.request_id  # type: ignore[index]


async def test_a_stream_that_fails_names_its_request_in_the_error_event(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["Hel", "lo", " there"], "m"), reset_after=2, done=False))
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json={
            "model": "m", "max_tokens": 32, "stream": True, "messages": ASK}) as resp:
        assert resp.status == 200
        rid = resp.headers["request-id"]
        text = (await resp.read()).decode()
    last = text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    doc = json.loads(last.split("data: ", 1)[1])
    assert doc["type"] == "error" and doc["error"]["type"] == "api_error" and doc["request_id"] == rid


def test_the_stream_encoders_write_the_id_they_are_given():
    err = ApiError(502, "gone", "upstream_error")
    for events in (MessagesStream("m", [], request_id="req_7").error(err), NativeEvents("req_7").error(err)):
        data = json.loads(events[-1].split(b"data: ", 1)[1])
        assert data == {"type": "error", "error": {"type": "api_error", "message": "gone"}, "request_id": "req_7"}


KEYED = """
server:
  api_keys:
    - {{key: sk-right, name: right}}
providers:
  lab: {{type: openai, base_url: '{url}'}}
models:
  - {{name: m, provider: lab}}
"""


async def test_a_refused_key_names_its_request(fakes, router):
    """The client-key check's 401 (before any route's own work) is Anthropic's too, with the request's id."""
    up = await fakes()
    r = await router(KEYED.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json={
            "model": "m", "max_tokens": 5, "messages": ASK}, headers={"x-api-key": "sk-wrong"}) as resp:
        doc = await resp.json()
        assert resp.status == 401 and doc["error"]["type"] == "authentication_error", doc
        assert doc["request_id"] == resp.headers["request-id"] == resp.headers["x-request-id"]
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json={
            "model": "m", "messages": ASK}, headers={"Authorization": "Bearer sk-wrong"}) as resp:
        doc = await resp.json()
        assert resp.status == 401 and set(doc) == {"error"}, doc  # OpenAI's shape: no such member
