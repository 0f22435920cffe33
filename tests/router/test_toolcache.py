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
