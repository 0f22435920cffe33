"""The prefix cache on its own: longest-prefix lookup, exact hits re-feed one token, LRU within a byte budget."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import KVCache

from engines.worker.prefix_cache import PrefixCache


def kv(tokens: list[int], layers: int = 2) -> list[KVCache]:
    """A per-layer KV cache whose key at position i is the token id (so contents can be checked)."""
    out = []
    for _ in range(layers):
        c = KVCache()
        keys = mx.array(tokens, dtype=mx.float32).reshape(1, 1, len(tokens), 1)
        c.update_and_fetch(keys, keys)
        out.append(c)
    return out


def held(cache: list[KVCache]) -> list[int]:
    keys = cache[0].keys
    return [int(x) for x in keys[0, 0, : cache[0].offset, 0].tolist()]


def test_miss_then_longest_prefix_hit():
    pc = PrefixCache(1 << 20)
    assert pc.lookup([1, 2, 3]).cache is None
    pc.insert([1, 2, 3, 4, 5], kv([1, 2, 3, 4, 5]))
    hit = pc.lookup([1, 2, 3, 9, 9])
    assert hit.cached_tokens == 3 and hit.rest == [9, 9] and held(hit.cache) == [1, 2, 3]
    longer = pc.lookup([1, 2, 3, 4, 5, 6, 7])
    assert longer.cached_tokens == 5 and longer.rest == [6, 7]
    # the stored entry is untouched by the trimmed views handed out
    again = pc.lookup([1, 2, 3, 4, 5, 6])
    assert held(again.cache) == [1, 2, 3, 4, 5]


def test_exact_hit_trims_one_token_to_refeed():
    pc = PrefixCache(1 << 20)
    pc.insert([7, 8, 9], kv([7, 8, 9]))
    hit = pc.lookup([7, 8, 9])
    assert hit.exact and hit.cached_tokens == 2 and hit.rest == [9]
    assert held(hit.cache) == [7, 8]
    assert pc.snapshot()["exact_hits"] == 1


def test_prefix_of_a_stored_entry_is_served_and_not_stored_twice():
    pc = PrefixCache(1 << 20)
    pc.insert([1, 2, 3, 4], kv([1, 2, 3, 4]))
    assert pc.covers([1, 2, 3])
    assert not pc.insert([1, 2, 3], kv([1, 2, 3]))
    hit = pc.lookup([1, 2, 3])
    assert hit.cached_tokens == 2 and hit.rest == [3]
    # a longer sequence replaces its stored prefix
    pc.insert([1, 2, 3, 4, 5, 6], kv([1, 2, 3, 4, 5, 6]))
    assert len(pc) == 1


def test_lru_eviction_within_budget():
    one = sum(c.nbytes for c in kv([0] * 4))
    pc = PrefixCache(one * 2)
    pc.insert([1, 1, 1, 1], kv([1, 1, 1, 1]))
    pc.insert([2, 2, 2, 2], kv([2, 2, 2, 2]))
    assert pc.lookup([1, 1, 1, 1, 5]).cached_tokens == 4  # touch: [2...] is now least recently used
    pc.insert([3, 3, 3, 3], kv([3, 3, 3, 3]))
    assert len(pc) == 2 and pc.nbytes <= pc.budget_bytes
    assert pc.lookup([2, 2, 2, 2, 5]).cache is None
    assert pc.lookup([1, 1, 1, 1, 5]).cached_tokens == 4
    assert pc.snapshot()["evictions"] == 1
    assert not PrefixCache(0).insert([1, 2], kv([1, 2]))
