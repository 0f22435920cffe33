"""An upstream's 4xx answer in another shape than OpenAI's keeps its message on the translated routes (Messages,
Responses), which cannot pass the body on as the chat route does: the client (Claude Code, Codex) saw only
"Upstream 'up' answered 400." for Gemini's array `[{"error": {...}}]`, Mistral's 422 with `message` as a list,
FastAPI's `{"detail": [...]}`."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router import pipeline
from tests.fakes.openai_upstream import Step

GEMINI = [{"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"store\"",
                     "status": "INVALID_ARGUMENT"}}]
MISTRAL = {"object": "Error", "message": [{"type": "extra_forbidden", "loc": ["body", "tools"],
                                           "msg": "Extra inputs are not permitted", "input": []}],
           "type": "invalid_request_error", "code": 3001}
FASTAPI = {"detail": [{"loc": ["body", "messages", 1, "content"], "msg": "field required",
                       "type": "value_error.missing"}]}


@pytest.mark.parametrize(("body", "message"), [
    (GEMINI, 'Invalid JSON payload received. Unknown name "store"'),
    (MISTRAL, "body.tools: Extra inputs are not permitted"),
    (FASTAPI, "body.messages.1.content: field required"),
    ({"detail": "Not Found"}, "Not Found"),
    ({"error": "model not loaded"}, "model not loaded"),
    ({"error": {"message": "bad", "code": "invalid_value"}}, "bad"),
    ({"object": "error", "message": "too long", "code": 400}, "too long"),
], ids=["gemini-array", "mistral-list", "fastapi-detail", "detail-string", "error-string", "openai", "vllm-old"])
def test_an_upstream_4xx_body_keeps_its_message_whatever_its_shape(body: Any, message: str) -> None:
    err = pipeline.UpstreamStatus(422, json.dumps(body).encode(), "application/json", "up").api_error()
    assert err.status == 422 and err.message == message


def test_an_upstream_4xx_message_is_bounded_and_redacted() -> None:
    secret = "sk-test-0123456789abcdef"
    body = json.dumps({"detail": [{"loc": ["header"], "msg": "bad key \\u0073k-test-0123456789abcdef " + "x" * 5000}]})
    err = pipeline.UpstreamStatus(400, body.encode(), "application/json", "up", (secret,)).api_error()
    assert "0123456789abcdef" not in err.message and "[redacted]" in err.message
    assert len(err.message) <= 1000


async def test_translated_routes_pass_the_message_of_a_gemini_error_array(fakes, router):
    up = await fakes()
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
""")
    up.push(Step(status=400, raw=json.dumps(GEMINI).encode()), Step(status=400, raw=json.dumps(GEMINI).encode()))
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/messages", json={"model": "m", "max_tokens": 9,
                                                         "messages": [{"role": "user", "content": "x"}]}) as resp:
            assert resp.status == 400
            assert "Unknown name" in (await resp.json())["error"]["message"]
        async with s.post(r.url + "/v1/responses", json={"model": "m", "input": "x"}) as resp:
            assert resp.status == 400
            assert "Unknown name" in (await resp.json())["error"]["message"]
