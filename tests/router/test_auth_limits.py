"""Client keys (401/403), body limit (413), malformed input (400): all OpenAI-shaped."""

from __future__ import annotations

import aiohttp
import openai
import pytest

CFG = """
server:
  max_body_mb: 0.01
  api_keys:
    - {{key: sk-full, name: full}}
    - {{key: sk-limited, name: limited, models: [m]}}
providers:
  lab: {{type: openai, base_url: '{url}'}}
models:
  - {{name: m, provider: lab}}
  - {{name: other, provider: lab}}
"""


def openai_error(doc: dict) -> dict:
    assert set(doc) == {"error"}
    err = doc["error"]
    assert {"message", "type", "code"} <= set(err) and err["message"]
    return err


async def test_auth_required_and_per_key_allowlist(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    with pytest.raises(openai.AuthenticationError):
        await r.client("wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        await r.client("wrong").models.list()
    ok = await r.client("sk-full").chat.completions.create(model="other", messages=[{"role": "user",
                                                                                   "content": "x"}])
    assert ok.choices[0].message.content == "echo: x"
    await r.client("sk-limited").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError) as info:
        await r.client("sk-limited").chat.completions.create(model="other", messages=[{"role": "user",
                                                                                     "content": "x"}])
    assert info.value.body["code"] == "model_not_allowed"
    assert [m.id for m in (await r.client("sk-limited").models.list()).data] == ["m"]
    assert len(up.requests) == 2
    assert all(q.headers.get("Authorization") != "Bearer sk-full" for q in up.requests)  # client keys stay here


async def test_health_needs_no_key(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.get(r.url + "/health") as resp:
        assert resp.status == 200
    async with aiohttp.ClientSession() as s, s.get(r.url + "/ready") as resp:
        assert resp.status == 401


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b'{"messages": []}', 400, None),  # OpenAI's "you must provide a model parameter", code null
    (b'{"model": 5}', 400, "invalid_type"),
    (b'{"model": "m", "pad": "' + b"x" * 20000 + b'"}', 413, "request_too_large"),
    (b'\xff\xfe{"model": "m"}', 400, "invalid_json"),
    (b"[" * 100000 + b"]" * 100000, 413, "request_too_large"),
])
async def test_bad_bodies(fakes, router, body, status, code):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(
            r.url + "/v1/chat/completions", data=body,
            headers={"Authorization": "Bearer sk-full", "Content-Type": "application/json"}) as resp:
        assert resp.status == status
        assert openai_error(await resp.json())["code"] == code
    assert not up.requests


async def test_deep_nesting_is_400_not_500(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url).replace("max_body_mb: 0.01", "max_body_mb: 1"))
    body = b'{"model": "m", "x": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", data=body,
                                                    headers={"Authorization": "Bearer sk-full"}) as resp:
        assert resp.status == 400
        assert openai_error(await resp.json())["code"] == "invalid_json"


async def test_upstream_credentials_refused_is_502_and_never_echoed(fakes, router):
    from tests.fakes.openai_upstream import Step

    up = await fakes()
    up.push(Step(status=401, json={"error": {"message": "Incorrect API key provided: sk-upstream-SECRET"}}))
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', api_key: sk-upstream-SECRET}}
models:
  - {{name: m, provider: lab}}
""")
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert "SECRET" not in info.value.response.text
    assert up.requests[0].headers["Authorization"] == "Bearer sk-upstream-SECRET"


@pytest.mark.parametrize("headers", [
    {"x-api-key": "sk-full", "Authorization": "Basic dXNlcjpwYXNz"},  # another scheme, e.g. a proxy's
    {"x-api-key": "sk-full", "Authorization": "Bearer stale-token"},  # ANTHROPIC_API_KEY beside a stale token
    {"x-api-key": "stale-key", "Authorization": "Bearer sk-full"},
], ids=["basic beside", "stale bearer beside", "stale x-api-key beside"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_key_in_either_header_is_accepted_when_both_are_sent(fakes, router, headers, path):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    wrong = {"x-api-key": "stale-key", "Authorization": "Bearer stale-token"}
    async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body, headers=wrong) as resp:
        assert resp.status == 401
