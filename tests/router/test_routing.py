"""Routing through the real openai client: exact, alias, wildcard, fallback chain, replicas, unknown names."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from tests.fakes.openai_upstream import Step, completion


def cfg(**urls: str) -> str:
    providers = "\n".join(f"  {n}: {{type: openai, base_url: '{u}', retries: 0}}" for n, u in urls.items())
    return f"providers:\n{providers}\n"


async def test_exact_alias_and_rewrite(fakes, router):
    up = await fakes()
    r = await router(cfg(lab=up.url) + """
models:
  - {name: coder, provider: lab, model: Qwen3-Coder-30B, aliases: [gpt-4o]}
""")
    client = r.client()
    for name in ("coder", "gpt-4o"):
        resp = await client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert resp.choices[0].message.content == "echo: hi"
        assert resp.model == name  # the client sees the name it asked for
    assert [q.body["model"] for q in up.requests] == ["Qwen3-Coder-30B", "Qwen3-Coder-30B"]


async def test_wildcard_suffix_is_upstream_model(fakes, router):
    up = await fakes()
    r = await router(cfg(openai=up.url) + "models:\n  - {name: 'openai/*', provider: openai}\n")
    resp = await r.client().chat.completions.create(model="openai/gpt-4.1", messages=[{"role": "user",
                                                                                        "content": "x"}])
    assert resp.model == "openai/gpt-4.1"
    assert up.requests[0].body["model"] == "gpt-4.1"


async def test_fallback_chain_moves_on_after_failures(fakes, router):
    a, b = await fakes("a"), await fakes("b")
    a.push(Step(status=500), Step(status=503))
    r = await router(cfg(a=a.url, b=b.url) + """
models:
  - {name: coder, provider: a}
  - {name: mini, provider: b}
  - {name: smart, fallbacks: [coder, mini]}
""")
    resp = await r.client().chat.completions.create(model="smart", messages=[{"role": "user", "content": "q"}])
    assert resp.choices[0].message.content == "echo: q"
    assert resp.model == "smart"
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert b.requests[0].body["model"] == "mini"


@pytest.mark.parametrize("tools", [None, [{"type": "function", "function": {"name": "f", "parameters": {}}}]],
                         ids=["passed through", "repair path"])
async def test_client_errors_are_not_retried_or_fallen_back(fakes, router, tools):
    a, b = await fakes("a"), await fakes("b")
    a.push(Step(status=400, json={"error": {"message": "bad tool schema", "type": "invalid_request_error",
                                            "code": "bad"}}))
    r = await router(cfg(a=a.url, b=b.url) + """
models:
  - {name: coder, provider: a, fallbacks: [mini]}
  - {name: mini, provider: b}
""")
    with pytest.raises(openai.BadRequestError) as info:
        await r.client().chat.completions.create(model="coder", messages=[{"role": "user", "content": "q"}],
                                                 **({"tools": tools} if tools else {}))
    assert "bad tool schema" in str(info.value)
    assert info.value.response.headers["x-agentgate-provider"] == "a"  # who answered, on both paths
    assert len(a.requests) == 1 and not b.requests


async def test_replicas_balance_by_least_outstanding(fakes, router):
    import asyncio

    a, b = await fakes("a"), await fakes("b")
    gate = asyncio.Event()
    a.push(Step(json=completion("held", "m"), gate=gate))  # holds replica a busy
    r = await router(cfg(a=a.url, b=b.url) + """
models:
  - name: coder
    model: q
    replicas: [{provider: a}, {provider: b}]
""")
    client = r.client()
    held = asyncio.create_task(client.chat.completions.create(model="coder", messages=[{"role": "user",
                                                                                       "content": "1"}]))
    await a.wait_requests(1)
    for i in range(3):  # a has one outstanding: all of these go to b
        await client.chat.completions.create(model="coder", messages=[{"role": "user", "content": str(i)}])
    assert len(b.requests) == 3 and len(a.requests) == 1
    a.script.clear()
    gate.set()
    await held
    await client.chat.completions.create(model="coder", messages=[{"role": "user", "content": "again"}])
    assert len(a.requests) == 2  # idle again, first in config order wins the tie


async def test_unknown_model_404_lists_near_names(fakes, router):
    up = await fakes()
    r = await router(cfg(lab=up.url) + "models:\n  - {name: qwen3-coder, provider: lab}\n")
    with pytest.raises(openai.NotFoundError) as info:
        await r.client().chat.completions.create(model="qwen3-codr", messages=[{"role": "user", "content": "x"}])
    body = info.value.body
    assert body["code"] == "model_not_found" and "qwen3-coder" in body["message"]


async def test_models_list_includes_aliases_and_unavailable_reasons(fakes, router):
    up = await fakes()
    r = await router(cfg(lab=up.url) + """
  cloud: {type: openai, base_url: 'https://api.example.invalid/v1', api_key: '${CLOUD_KEY}'}
models:
  - {name: coder, provider: lab, aliases: [gpt-4o]}
  - {name: mini, provider: cloud}
""")
    page = await r.client().models.list()
    rows = {m.id: m for m in page.data}
    assert set(rows) == {"coder", "gpt-4o", "mini"}
    assert rows["gpt-4o"].agentgate["alias_of"] == "coder"
    assert rows["mini"].agentgate["available"] is False
    assert "CLOUD_KEY" in rows["mini"].agentgate["reason"]
    with pytest.raises(openai.APIStatusError) as info:  # never contacted
        await r.client().chat.completions.create(model="mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503 and "CLOUD_KEY" in info.value.message


async def test_completions_and_embeddings(fakes, router):
    up = await fakes()
    r = await router(cfg(lab=up.url) + "models:\n  - {name: m, provider: lab, model: upstream-m}\n")
    client = r.client()
    c = await client.completions.create(model="m", prompt="hello")
    assert c.choices[0].text == "echo" and c.model == "m"
    e = await client.embeddings.create(model="m", input="hello")
    assert e.data[0].embedding == [0.1, 0.2]
    assert [q.path for q in up.requests] == ["/completions", "/embeddings"]


async def test_health_and_ready(fakes, router):
    up = await fakes()
    r = await router(cfg(lab=up.url) + "models:\n  - {name: m, provider: lab}\n")
    async with aiohttp.ClientSession() as s:
        async with s.get(r.url + "/health") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
        async with s.get(r.url + "/ready") as resp:
            doc = await resp.json()
            assert doc["providers"]["lab"]["breaker"] == "closed"
