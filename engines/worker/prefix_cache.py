"""Prefix cache of KV states across requests and conversations, used only on the MLX thread.

Entries are keyed by the token sequence their KV cache holds (a trie from mlx-lm finds the longest shared
prefix). A lookup returns fresh cache objects covering the longest usable prefix of the prompt plus the tokens
still to prefill, which always include at least the last prompt token: on an exact hit the cache is trimmed by
one token so that the last token is re-fed (mlx-lm's batch generator rejects an empty prompt).

Entries are evicted least recently used first to stay within a byte budget. Inserting a sequence drops stored
strict prefixes of it (a trimmable longer entry serves them), and a sequence that is already a prefix of a stored
entry is not stored again.

With a `DiskKV` attached, new entries are also queued for disk (`persist()`, called by the scheduler when it is
idle, and on shutdown), and a lookup that the disk serves better than memory loads that entry first: an engine
that was unloaded or restarted resumes a conversation without prefilling it again.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache, PromptTrie, can_trim_prompt_cache

from engines.worker.kv_disk import DiskKV

log = logging.getLogger("agentgate.engine")

_MODEL = "model"  # the trie is keyed by model; one worker serves one model


@dataclass
class _Entry:
    cache: list[Any]
    nbytes: int


@dataclass
class CacheLookup:
    cache: list[Any] | None  # fresh per-layer caches, or None on a miss
    cached_tokens: int  # prompt tokens covered by `cache`
    rest: list[int]  # tokens still to prefill (never empty)
    exact: bool = False


@dataclass
class PrefixCacheStats:
    hits: int = 0
    exact_hits: int = 0
    misses: int = 0
    hit_tokens: int = 0
    inserts: int = 0
    evictions: int = 0


def _layers_nbytes(cache: list[Any]) -> int:
    return sum(int(c.nbytes) for c in cache)


def _view(cache: list[Any], length: int) -> list[Any]:
    """Fresh cache objects holding the first `length` tokens of `cache`, which stays untouched.

    Plain KV caches are shared read-only (the batch generator copies them when it merges them into a batch);
    other cache types are deep-copied and trimmed.
    """
    out: list[Any] = []
    for c in cache:
        if type(c) is KVCache:
            v = KVCache()
            v.keys, v.values = c.keys, c.values
            v.offset = min(length, c.offset)
            out.append(v)
        else:
            d = copy.deepcopy(c)
            if d.is_trimmable() and d.size() > length:
                d.trim(d.size() - length)
            out.append(d)
    return out


def _cache_len(cache: list[Any]) -> int:
    return int(cache[0].size()) if cache else 0


class PrefixCache:
    def __init__(self, budget_bytes: int, *, max_entries: int = 256, disk: DiskKV | None = None) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self.disk = disk
        self._unsaved: set[tuple[int, ...]] = set()  # entries not yet queued for disk
        self.max_entries = max_entries
        self._trie = PromptTrie()
        self._lru: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self._nbytes = 0
        self.stats = PrefixCacheStats()

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    @property
    def has_unsaved(self) -> bool:
        return bool(self._unsaved)

    # -- lookup ---------------------------------------------------------------------------------------------
    def lookup(self, tokens: list[int]) -> CacheLookup:
        """The longest usable cached prefix of `tokens` (which must not be empty)."""
        found = self._find(tokens)
        if self.disk is not None and len(self.disk):
            match = self.disk.find(tokens)
            if match is not None and match.length > (found[1] if found else 0) and self._load(match.key):
                found = self._find(tokens)
        if found is None:
            self.stats.misses += 1
            return CacheLookup(None, 0, list(tokens))
        key, length, exact = found
        entry = self._lru[key]
        self._lru.move_to_end(key)
        self.stats.hits += 1
        self.stats.exact_hits += int(exact)
        self.stats.hit_tokens += length
        return CacheLookup(_view(entry.cache, length), length, list(tokens[length:]), exact)

    def _find(self, tokens: list[int]) -> tuple[tuple[int, ...], int, bool] | None:
        if not tokens or not self._lru:
            return None
        res = self._trie.search(_MODEL, tokens)
        if res.exact is not None:
            entry = self._lru[tuple(res.exact)]
            if can_trim_prompt_cache(entry.cache) and len(tokens) > 1:
                return tuple(res.exact), len(tokens) - 1, True
            # Not trimmable: fall back to the longest strict prefix that is stored.
            res = self._trie.search(_MODEL, tokens[:-1])
            if res.exact is not None:
                return tuple(res.exact), len(res.exact), False
        short = len(res.shorter) if res.shorter is not None else 0
        if res.longer is not None and res.common_prefix > short:
            entry = self._lru[tuple(res.longer)]
            if can_trim_prompt_cache(entry.cache):
                length = min(len(tokens) - 1, res.common_prefix)
                if length > 0:
                    return tuple(res.longer), length, False
        if res.shorter is not None and 0 < short < len(tokens):
            return tuple(res.shorter), short, False
        return None

    def _load(self, key: str) -> bool:
        assert self.disk is not None
        loaded = self.disk.load(key)
        if loaded is None:
            return False
        tokens, cache = loaded
        return self.insert(tokens, cache, persist=False)

    def persist(self) -> int:
        """Queue the entries not yet on disk for writing (cheap; the disk's writer thread does the I/O)."""
        if self.disk is None or not self._unsaved:
            return 0
        queued = 0
        for key in list(self._unsaved):
            entry = self._lru.get(key)
            if entry is not None:
                try:
                    queued += int(self.disk.save(list(key), entry.cache))
                except Exception:
                    log.exception("queueing a KV cache entry for disk failed")
        self._unsaved.clear()
        return queued

    def covers(self, tokens: list[int]) -> bool:
        """Whether a stored entry already holds `tokens` (exactly or as a trimmable prefix)."""
        if not tokens or not self._lru:
            return False
        res = self._trie.search(_MODEL, tokens)
        if res.exact is not None:
            return True
        if res.longer is not None and res.common_prefix >= len(tokens):
            return can_trim_prompt_cache(self._lru[tuple(res.longer)].cache)
        return False

    # -- insert / evict -------------------------------------------------------------------------------------
    def insert(self, tokens: list[int], cache: list[Any], *, persist: bool = True) -> bool:
        """Store `cache` (holding exactly `tokens`); returns whether it was kept."""
        if not tokens or not cache or self.budget_bytes <= 0:
            return False
        if _cache_len(cache) != len(tokens):
            return False
        if self.covers(tokens):
            return False
        nbytes = _layers_nbytes(cache)
        if nbytes > self.budget_bytes:
            return False
        mx.eval([c.state for c in cache])  # materialise now so no batch-sized buffer stays referenced
        key = tuple(tokens)
        self._trie.add(_MODEL, list(tokens), key)
        self._lru[key] = _Entry(cache, nbytes)
        self._nbytes += nbytes
        self.stats.inserts += 1
        if can_trim_prompt_cache(cache):
            for _, prefix_key in self._trie.pop_prefixes(_MODEL, list(tokens)):
                old = self._lru.pop(prefix_key, None)
                self._unsaved.discard(prefix_key)
                if old is not None:
                    self._nbytes -= old.nbytes
        self._evict()
        if persist and self.disk is not None and key in self._lru:
            self._unsaved.add(key)
        return key in self._lru

    def _evict(self) -> None:
        while self._lru and (self._nbytes > self.budget_bytes or len(self._lru) > self.max_entries):
            key, entry = self._lru.popitem(last=False)
            self._trie.pop(_MODEL, list(key))
            self._nbytes -= entry.nbytes
            self.stats.evictions += 1
            if key in self._unsaved and self.disk is not None:  # evicted from memory: keep it on disk
                self._unsaved.discard(key)
                try:
                    self.disk.save(list(key), entry.cache)
                except Exception:
                    log.exception("queueing an evicted KV cache entry for disk failed")

    def clear(self) -> None:
        self._trie = PromptTrie()
        self._lru.clear()
        self._unsaved.clear()
        self._nbytes = 0

    def snapshot(self) -> dict[str, int]:
        s = self.stats
        return {
            "entries": len(self._lru),
            "bytes": self._nbytes,
            "budget_bytes": self.budget_bytes,
            "hits": s.hits,
            "exact_hits": s.exact_hits,
            "misses": s.misses,
            "hit_tokens": s.hit_tokens,
            "inserts": s.inserts,
            "evictions": s.evictions,
            **({f"disk_{k}": v for k, v in self.disk.snapshot().items()} if self.disk is not None else {}),
        }
