"""The prefix cache on disk: entries written off the MLX thread come back in a new cache (as after an unload or a
restart), bounded in bytes, keyed by model; damaged files are dropped, never served."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
from mlx_lm.models.cache import KVCache

from engines.worker.kv_disk import DiskKV, model_identity
from engines.worker.prefix_cache import PrefixCache


def kv(tokens: list[int], layers: int = 2, dtype: mx.Dtype = mx.float32) -> list[KVCache]:
    """Per-layer KV caches whose key at position i is the token id (values: minus it)."""
    out = []
    for _ in range(layers):
        c = KVCache()
        keys = mx.array(tokens, dtype=dtype).reshape(1, 1, len(tokens), 1)
        c.update_and_fetch(keys, -keys)
        out.append(c)
    return out


def held(cache: list[KVCache]) -> list[int]:
    return [int(x) for x in cache[0].keys[0, 0, : cache[0].offset, 0].tolist()]


def disk(root: Path, budget: int = 1 << 20, model: str = "m1") -> DiskKV:
    d = DiskKV(root, model, budget)
    d.open()
    return d


def test_entries_survive_a_new_cache_and_serve_the_longest_prefix(tmp_path: Path):
    pc = PrefixCache(1 << 20, disk=disk(tmp_path))
    pc.insert([1, 2, 3, 4], kv([1, 2, 3, 4]))
    pc.insert([1, 2, 3, 4, 5, 6], kv([1, 2, 3, 4, 5, 6]))  # replaces its prefix in memory
    assert pc.has_unsaved
    assert pc.persist() == 1 and pc.disk is not None and pc.disk.flush(10)
    pc.disk.close()
    assert len(list((tmp_path / "m1").glob("*.safetensors"))) == 1

    fresh = PrefixCache(1 << 20, disk=disk(tmp_path))  # as a reloaded engine
    hit = fresh.lookup([1, 2, 3, 4, 5, 6, 7, 8])
    assert hit.cached_tokens == 6 and hit.rest == [7, 8] and held(hit.cache) == [1, 2, 3, 4, 5, 6]
    assert [int(x) for x in hit.cache[1].values[0, 0, :6, 0].tolist()] == [-1, -2, -3, -4, -5, -6]
    assert fresh.snapshot()["disk_loads"] == 1 and not fresh.has_unsaved  # loaded entries are not rewritten
    # now in memory: the next lookup does not read the disk again
    assert fresh.lookup([1, 2, 3, 4, 5, 6, 9]).cached_tokens == 6 and fresh.snapshot()["disk_loads"] == 1
    assert fresh.lookup([9, 9, 9]).cache is None


def test_bfloat16_round_trip_and_other_models_are_not_served(tmp_path: Path):
    d = disk(tmp_path)
    assert d.save([5, 6, 7], kv([5, 6, 7], dtype=mx.bfloat16)) and d.flush(10)
    d.close()
    again = disk(tmp_path)
    match = again.find([5, 6, 7, 8])
    assert match is not None and match.length == 3
    loaded = again.load(match.key)
    assert loaded is not None and loaded[0] == [5, 6, 7]
    assert loaded[1][0].keys.dtype == mx.bfloat16 and held(loaded[1]) == [5, 6, 7]
    assert disk(tmp_path, model="m2").find([5, 6, 7, 8]) is None


def test_a_next_turn_supersedes_the_previous_one_on_disk(tmp_path: Path):
    d = disk(tmp_path)
    turn1 = [*range(1, 600), 900, 901]  # prompt + generated reply
    turn2 = [*range(1, 600), 902, 903, *range(2000, 2100)]  # the reply re-rendered, then more
    assert d.save(turn1, kv(turn1)) and d.flush(10)
    assert d.save([7] * 700, kv([7] * 700)) and d.flush(10)  # another conversation stays
    assert d.save(turn2, kv(turn2)) and d.flush(10)
    assert len(d) == 2 and d.find(turn1) is not None and d.find(turn1).length == 599  # type: ignore[union-attr]
    d.close()


def test_a_longer_conversation_leaves_short_unrelated_ones_on_disk(tmp_path: Path):
    """A short entry shares "all but its last 256 tokens" with anything: only a previous turn (three quarters of it
    in common at least) is superseded, not another conversation or one that only begins with the same prompt."""
    d = disk(tmp_path)
    a, b = list(range(1000, 1100)), list(range(2000, 2150))
    c = [*range(1000, 1040), *range(5000, 5200)]  # the same 40-token system prompt as a, then its own
    for tokens in (a, b, c):
        assert d.save(tokens, kv(tokens)) and d.flush(10)
    assert len(d) == 3 and d.find([*a, 5]).length == 100  # type: ignore[union-attr]
    d.close()


def test_budget_evicts_least_recently_used_files(tmp_path: Path):
    d = disk(tmp_path)
    assert d.save([1] * 64, kv([1] * 64)) and d.flush(10)
    one = d.nbytes
    d.close()
    d = disk(tmp_path, budget=int(one * 2.5))
    for t in (2, 3, 4):
        assert d.save([t] * 64, kv([t] * 64)) and d.flush(10)
    assert len(d) == 2 and d.nbytes <= d.budget_bytes and d.stats.evictions == 2
    assert d.find([1] * 65) is None and d.find([2] * 65) is None and d.find([4] * 65) is not None
    assert len(list((tmp_path / "m1").glob("*.safetensors"))) == 2
    d.close()


def test_damaged_files_are_dropped(tmp_path: Path):
    d = disk(tmp_path)
    assert d.save([1, 2, 3], kv([1, 2, 3])) and d.flush(10)
    d.close()
    (path,) = (tmp_path / "m1").glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:-4])  # truncated
    (tmp_path / "m1" / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    fresh = disk(tmp_path)
    assert len(fresh) == 0 and not any((tmp_path / "m1").iterdir())
    assert PrefixCache(1 << 20, disk=fresh).lookup([1, 2, 3, 4]).cache is None


def test_model_identity_follows_the_weights(tmp_path: Path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"x")
    first = model_identity(tmp_path)
    assert model_identity(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"xy")
    assert model_identity(tmp_path) != first


async def test_a_reloaded_worker_resumes_the_conversation_from_disk(engine, tmp_path: Path):
    """Unload (graceful stop) then load again: the second turn's prefix comes from the disk, not a prefill."""
    from tests.engines.conftest import WEATHER_TOOL

    kv_dir = str(tmp_path / "kv")
    messages: list[dict] = [{"role": "system", "content": "You are a weather bot."},
                            {"role": "user", "content": "What is the weather in Paris?"}]
    first_engine = await engine("tool", kv_dir=kv_dir)
    first = await first_engine.client().chat.completions.create(model="tool", messages=messages,
                                                                tools=[WEATHER_TOOL], temperature=0)
    await first_engine.close()  # as the supervisor's ttl unload or LRU swap: writes the cache on the way out
    assert list((tmp_path / "kv").glob("*/*.safetensors"))

    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "clear"}'}]
    second_engine = await engine("tool", kv_dir=kv_dir)
    second = await second_engine.client().chat.completions.create(model="tool", messages=messages,
                                                                 tools=[WEATHER_TOOL], temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens <= cached < second.usage.prompt_tokens
    stats = await second_engine.stats()
    assert stats["cache"]["disk_loads"] == 1
    assert second.choices[0].message.tool_calls[0].function.name == "get_weather"
