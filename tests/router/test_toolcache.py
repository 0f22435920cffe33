"""The tool-index cache: one compiled index per distinct tools list, bounded in entries and bytes."""

from __future__ import annotations

from typing import Any

from router.toolcache import ToolIndexCache, tools_bytes


def tool(name: str, extra: int = 0) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": "x" * extra, "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}


def test_same_tools_share_one_index_and_its_validators():
    cache = ToolIndexCache()
    first = cache.get([tool("a"), tool("b")])
    first.get("a").validator()
    again = cache.get([tool("a"), tool("b")])  # equal content, new objects: a later turn of the conversation
    assert again is first and again.get("a")._checked
    assert cache.get([tool("b"), tool("a")]) is not first  # order is part of the list
    assert cache.get([tool("a")]) is not first
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 3)


def test_bounded_in_entries_and_bytes_least_recently_used_out():
    cache = ToolIndexCache(max_entries=4, max_bytes=10_000)
    keep = cache.get([tool("keep")])
    for i in range(50):
        cache.get([tool(f"t{i}", extra=500)])
        assert cache.get([tool("keep")]) is keep  # used every time: never the one evicted
        assert len(cache) <= 4 and cache.bytes <= 10_000
    cache.get([tool("big", extra=4_000)])
    cache.get([tool("big2", extra=4_000)])
    assert cache.bytes <= 10_000 and cache.get([tool("big2", extra=4_000)]) is cache.get([tool("big2", extra=4_000)])


def test_a_new_huge_list_per_request_is_never_stored():
    cache = ToolIndexCache(max_entry_bytes=100_000)
    small = cache.get([tool("a")])
    for round_ in range(3):
        tools = [tool(f"r{round_}_{i}") for i in range(5_000)]  # ~0.5 MB each time, each time new
        assert len(tools_bytes(tools)) > 100_000
        index = cache.get(tools)
        assert index.resolve(f"r{round_}_4999") == f"r{round_}_4999"
        assert len(cache) == 1
    assert cache.get([tool("a")]) is small


# --- through the router ------------------------------------------------------------------------------------------

def cfg(url: str) -> str:
    return f"""
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab, model: m-up}}
"""


async def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        return resp.status, await resp.read()


async def test_a_hostile_client_cannot_grow_the_router_and_an_agent_hits_the_cache(fakes, router):
    from tests.fakes.openai_upstream import Step, completion

    up = await fakes()
    r = await router(cfg(up.url))
    cache = r.state.tool_indexes
    msgs = [{"role": "user", "content": "hi"}]
    for _ in range(2):  # an agent's two turns: same tools, new objects each time
        up.push(Step(json=completion("Hello.", "m-up")))
        assert (await post(r.url, {"model": "m", "messages": msgs, "tools": [tool("a"), tool("b")]}))[0] == 200
    assert (len(cache), cache.hits) == (1, 1)
    held = cache.bytes
    for round_ in range(3):  # a new 5,000-tool list (~0.6 MB) every time
        up.push(Step(json=completion("Hello.", "m-up")))
        tools = [tool(f"r{round_}_{i}", extra=20) for i in range(5_000)]
        assert (await post(r.url, {"model": "m", "messages": msgs, "tools": tools}))[0] == 200
    assert (len(cache), cache.bytes) == (1, held)


async def test_an_answer_needing_no_repair_is_passed_on_as_its_bytes(fakes, router):
    import json

    from tests.fakes.openai_upstream import Step, completion

    up = await fakes()
    r = await router(cfg(up.url))
    call = {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"n": 3}'}}
    raw = (b'{"id": "x",  "model": "m-up", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": '
           b'{"role": "assistant", "content": null, "tool_calls": [' + json.dumps(call).encode() + b']}}], '
           b'"usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}, "x_extra": 1.50}')
    up.push(Step(raw=raw, headers={"Content-Type": "application/json"}))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [tool("a")]}
    status, got = await post(r.url, body)
    assert status == 200 and got == raw.replace(b'"model": "m-up"', b'"model": "m"')
    broken = '<tool_call>{"name": "a", "arguments": {"n": "3"}}</tool_call>'  # needs a repair: re-encoded
    up.push(Step(json=completion(broken, "m-up")))
    status, got = await post(r.url, body)
    doc = json.loads(got)
    assert status == 200 and doc["model"] == "m"
    assert json.loads(doc["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"n": 3}
