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


# --- tools lists known by their bytes ----------------------------------------------------------------------------

def _learned(raw: bytes) -> tuple[Any, Any]:
    import json

    from router.toolcache import KnownTools

    known = KnownTools(max_entry_bytes=100_000)
    body = json.loads(raw)
    known.learn(raw, body["tools"], cache_index := ToolIndexCache().get(body["tools"]))
    return known, cache_index


def test_a_known_list_is_not_parsed_again_and_the_body_means_the_same():
    import json

    tools = [tool("a", extra=40), tool("b")]
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools}).encode()
    known, index = _learned(raw)
    assert len(known) == 1 and known.bytes == len(json.dumps(tools))
    later = json.dumps({"model": "m", "messages": [{"role": "user", "content": "next"}], "tools": tools,
                        "stream": True}).encode()
    body = known.parse(later)
    assert body == json.loads(later) and list(body) == list(json.loads(later))  # same members, same order
    again = known.parse(later)
    assert again is not None and again["tools"] is body["tools"] and known.index_of(again["tools"]) is index
    assert known.index_of([tool("a", extra=40), tool("b")]) is None  # equal, but not the list handed out
    assert known.hits == 2


def test_only_the_top_level_tools_value_is_taken_for_a_known_list():
    import json

    tools = [tool("a", extra=40)]
    listed = json.dumps(tools)
    known, _ = _learned(json.dumps({"model": "m", "tools": tools}).encode())
    cases = [
        {"model": "m", "messages": [{"role": "user", "content": f'"tools": {listed}'}]},  # inside a string
        {"model": "m", "meta": {"tools": tools}},  # nested, no top-level tools
        {"model": "m", "meta": {"tools": tools}, "tools": [tool("z")]},  # nested, another top-level list
        {"model": "m", "tools": [*tools, tool("c")]},  # the known list is only the start of this one
        {"model": "m", "tools": [tools]},  # inside another list
    ]
    for case in cases:
        raw = json.dumps(case).encode()
        body = known.parse(raw)
        assert body is None or body == json.loads(raw), case
    dup = b'{"model": "m", "tools": ' + listed.encode() + b', "tools": []}'  # duplicate keys: the last one counts
    assert known.parse(dup) in (None, json.loads(dup))
    assert known.parse(b'{"model": "m", "tools": ' + listed.encode() + b', ') is None  # not JSON: parsed whole
    assert known.parse(b'["x", "tools": ' + listed.encode() + b']') is None
    assert known.parse(b'{"tools": ' + listed.encode() + b', "x": "\\ud800"}') is None  # escapes: parsed whole


def test_known_lists_are_bounded_and_a_huge_one_is_never_kept():
    import json

    from router.toolcache import KnownTools

    known = KnownTools(max_entries=3, max_bytes=20_000, max_entry_bytes=8_000)
    index = ToolIndexCache().get([tool("x")])
    for i in range(10):
        tools = [tool(f"t{i}", extra=300)]
        known.learn(json.dumps({"tools": tools}).encode(), tools, index)
        assert len(known) <= 3 and known.bytes <= 20_000
    huge = [tool(f"h{i}") for i in range(200)]
    before = (len(known), known.bytes)
    known.learn(json.dumps({"tools": huge}).encode(), huge, index)
    assert (len(known), known.bytes) == before
    big = [tool("b", extra=100), 7 * 10**20]  # an integer a double cannot hold: never taken from the cache
    known.learn(json.dumps({"tools": big}).encode(), big, index)
    assert (len(known), known.bytes) == before


async def test_an_agents_next_turn_reuses_its_parsed_tools(fakes, router):
    from tests.fakes.openai_upstream import Step, completion

    up = await fakes()
    r = await router(cfg(up.url))
    known = r.state.tool_indexes.known
    tools = [tool("a", extra=100), tool("b")]
    for turn in range(3):
        up.push(Step(json=completion("Hello.", "m-up")))
        msgs = [{"role": "user", "content": "hi"}] * (turn + 1)
        status, _ = await post(r.url, {"model": "m", "messages": msgs, "tools": tools})
        assert status == 200
    assert (len(known), known.hits) == (1, 2)
    sent = up.requests[-1]
    assert sent.body["tools"] == tools and len(sent.body["messages"]) == 3
