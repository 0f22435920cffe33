"""An answer that finished with `finish_reason: "abort"` (vLLM's and SGLang's when the server aborted the request:
shutdown, preemption) is an upstream failure on every route, like one that finished with "error": before the first
byte a 502 in the route's shape that the fallback answers, mid-stream the route's terminal error event; never a
normal completion (Messages `end_turn`, Responses `completed`)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import Step, chunk, completion, stream_of
from tests.fallback_pair import with_fallback

ROUTES = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}


def ask(route: str, model: str, stream: bool) -> dict[str, Any]:
    if route == "responses":
        return {"model": model, "input": "hi", "stream": stream}
    return {"model": model, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


async def post(url: str, route: str, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(url + ROUTES[route], json=body) as resp:
        return resp.status, await resp.text()



def assert_route_error(route: str, text: str) -> None:
    doc = json.loads(text)
    if route == "messages":
        assert doc["type"] == "error" and doc["error"]["type"] == "api_error", doc
    else:
        assert doc["error"]["code"] == "upstream_error", doc
    assert "abort" in text


ABORTED = completion("The answer is", "m", finish_reason="abort")


@pytest.mark.parametrize("route", list(ROUTES))
async def test_an_aborted_answer_is_a_failure_that_falls_back(fakes, router, route: str) -> None:
    main, backup, r = await with_fallback(fakes, router)
    main.push(Step(json=ABORTED))
    status, _ = await post(r.url, route, ask(route, "fb", False))
    assert status == 200 and len(backup.requests) == 1
    main.push(Step(json=ABORTED))
    status, text = await post(r.url, route, ask(route, "m", False))
    assert status == 502, text[:300]
    assert_route_error(route, text)


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_stream_aborted_at_its_first_event_falls_back(fakes, router, route: str) -> None:
    main, backup, r = await with_fallback(fakes, router)
    main.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}, "abort")]))
    status, _ = await post(r.url, route, ask(route, "fb", True))
    assert status == 200 and len(backup.requests) == 1


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_stream_aborted_mid_way_ends_with_the_routes_error_event(fakes, router, route: str) -> None:
    main, _, r = await with_fallback(fakes, router)
    main.push(Step(sse=stream_of(["partial", " more"], "m", finish_reason="abort")))
    status, text = await post(r.url, route, ask(route, "m", True))
    assert status == 200 and "partial" in text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    last = events[-1]
    if route == "messages":
        assert last["type"] == "error" and last["error"]["type"] == "api_error", last
        assert not any(e["type"] == "message_delta" for e in events)
    elif route == "responses":
        assert last["type"] == "response.failed", last
        assert events[-2]["type"] == "error" and events[-2]["code"] == "upstream_error_mid_stream"
    else:
        assert "error" in last and "mid-stream" in last["error"]["message"], last
        assert not any(c.get("finish_reason") for e in events for c in e.get("choices") or [])
