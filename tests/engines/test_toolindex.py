"""The worker reuses a tools list's index (and its compiled validators) across requests."""

from __future__ import annotations

from engines.worker.toolindex import ToolIndexes
from tests.engines.conftest import WEATHER_TOOL


def _tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def test_the_same_list_gets_the_same_index_and_the_cache_is_bounded():
    cache = ToolIndexes(max_entries=2)
    first = cache.of([WEATHER_TOOL])
    assert cache.of([dict(WEATHER_TOOL)]) is first and cache.hits == 1  # equal lists, not only the same object
    assert first.get("get_weather").first_error({"city": 3}) is not None  # a real index, validators and all
    assert cache.of([_tool("a")]) is not first
    cache.of([_tool("b")])
    assert len(cache) == 2 and cache.of([WEATHER_TOOL]) is not first  # least recently used out


def test_lists_it_does_not_keep():
    cache = ToolIndexes(max_chars=50)
    assert not cache.of(None) and not cache.of([])
    big = [WEATHER_TOOL]
    assert cache.of(big) is not cache.of(big) and len(cache) == 0  # too large to keep: indexed per request
    odd = [{"type": "function", "function": {"name": "x", "parameters": {"type": "object"}}, "extra": {1, 2}}]
    assert cache.of(odd).resolve("x") == "x" and len(cache) == 0  # not JSON text: indexed per request
