"""Attention split across CPU streams: the same output as mlx-lm's own function for every mask shape the models
pass (bit for bit with the reference BLAS; with OpenBLAS, whose kernels may round the last bit differently for
another row count, within float32 rounding); small and quantized calls left to mlx-lm; installed into a real worker
and used there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import pytest
from mlx_lm import load
from mlx_lm.models import base, qwen3
from mlx_lm.models.base import create_causal_mask

from engines.worker import blas, cpu_attention
from engines.worker.cpu_attention import ParallelAttention, install
from tests.engines.conftest import Engine


def qkv(b: int, length: int, total: int, heads: int = 4, kv_heads: int = 2) -> tuple[mx.array, mx.array, mx.array]:
    mx.random.seed(b * 1000 + length + total)
    q = mx.random.normal((b, heads, length, 16))
    k = mx.random.normal((b, kv_heads, total, 16))
    v = mx.random.normal((b, kv_heads, total, 16))
    return q, k, v


def both(q: mx.array, k: mx.array, v: mx.array, mask: Any, sinks: mx.array | None = None,
         threads: int = 2) -> tuple[mx.array, mx.array, ParallelAttention]:
    split = ParallelAttention(threads, min_scores=1, min_rows=4)
    expected = base.scaled_dot_product_attention(q, k, v, cache=None, scale=0.25, mask=mask, sinks=sinks)
    got = split(q, k, v, None, 0.25, mask, sinks)
    return expected, got, split


def same(got: mx.array, expected: mx.array) -> bool:
    """Bit for bit, unless this process's MLX calls OpenBLAS (tests/conftest.py binds it): then within fp32 rounding."""
    if got.shape != expected.shape:
        return False
    if blas.current().blas != "openblas":
        return bool(mx.array_equal(got, expected).item())
    return bool(mx.allclose(got, expected, rtol=1e-5, atol=1e-6).item())


MASKS: dict[str, Callable[[int, int, int], Any]] = {
    "none": lambda b, n, total: None,
    "causal": lambda b, n, total: "causal",
    "bool": lambda b, n, total: create_causal_mask(n, total - n),
    "additive": lambda b, n, total: mx.where(create_causal_mask(n, total - n), 0.0, -mx.inf),
    "left-padded batch": lambda b, n, total: create_causal_mask(
        n, total - n, left_padding=mx.array([(i * 7) % 11 for i in range(b)])),
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize(("b", "length", "total", "threads"),
                         [(1, 400, 2400, 2), (1, 64, 64, 3), (3, 37, 500, 2), (1, 9, 300, 4)])
def test_query_split_is_exact(mask: str, b: int, length: int, total: int, threads: int) -> None:
    q, k, v = qkv(b, length, total)
    expected, got, split = both(q, k, v, MASKS[mask](b, length, total), threads=threads)
    assert split.split_calls == 1
    assert same(got, expected)


@pytest.mark.parametrize("mask", ["none", "left-padded batch"])
def test_batched_decode_splits_the_batch_exactly(mask: str) -> None:
    q, k, v = qkv(8, 1, 900)
    expected, got, split = both(q, k, v, MASKS[mask](8, 1, 900))
    assert split.split_calls == 1 and same(got, expected)


def test_attention_sinks_pass_through() -> None:
    q, k, v = qkv(2, 48, 300)
    sinks = mx.array([0.5, -1.0, 2.0, 0.0])
    expected, got, _ = both(q, k, v, "causal", sinks)
    assert same(got, expected)


def test_small_and_quantized_calls_go_to_mlx_lm() -> None:
    calls: list[Any] = []

    def original(*args: Any, **kw: Any) -> mx.array:
        calls.append(kw["cache"])
        return base.scaled_dot_product_attention(*args, **kw)

    split = ParallelAttention(2, original)
    q, k, v = qkv(1, 8, 40)
    split(q, k, v, None, 0.25, "causal")  # far below the work worth splitting

    class QuantizedCache:
        bits = 4
        group_size = 64

    split_always = ParallelAttention(2, original, min_scores=1, min_rows=1)
    with pytest.raises(Exception):  # noqa: B017 - mlx-lm's quantized path rejects plain arrays; it was chosen
        split_always(q, k, v, QuantizedCache(), 0.25, "causal")
    assert len(calls) == 2 and split.split_calls == 0 and split_always.split_calls == 0
    one_thread = ParallelAttention(1, original, min_scores=1, min_rows=1)
    one_thread(q, k, v, None, 0.25, None)
    assert len(calls) == 3 and one_thread.split_calls == 0


def test_install_replaces_and_restores_the_models_attention(tiny_models: dict[str, Path]) -> None:
    model, _ = load(str(tiny_models["random"]))
    try:
        first = install(model, 2)
        assert isinstance(first, ParallelAttention) and qwen3.scaled_dot_product_attention is first
        again = install(model, 3)
        assert again is first and first.threads == 3  # installed once per process
        assert install(model, 1) is None
        assert qwen3.scaled_dot_product_attention is base.scaled_dot_product_attention
    finally:
        install(model, 1)


async def test_worker_generates_the_same_tokens_with_split_attention(
        engine: Callable[..., Any]) -> None:
    prompt = " ".join(f"line {i}: the build finished without errors." for i in range(120))  # well above MIN_SCORES
    outputs: dict[int, tuple[str, dict[str, Any]]] = {}
    for threads in (2, 1):
        e: Engine = await engine("random", cpu_threads=threads)
        client = e.client()
        reply = await client.chat.completions.create(
            model="random", messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0.0,
            logit_bias={"2": -100})
        outputs[threads] = (reply.choices[0].message.content or "", (await e.stats())["cpu_attention"])
    (split_text, split_stats), (plain_text, plain_stats) = outputs[2], outputs[1]
    assert split_text == plain_text and split_text
    assert split_stats["threads"] == 2 and split_stats["split_calls"] > 0
    assert plain_stats == {"threads": 1, "split_calls": 0}


@pytest.mark.parametrize(("cores", "blas", "expected"), [
    (2, None, 2), (2, "1", 2), (2, "2", 1), (2, "4", 1), (16, "2", 8), (64, None, 8), (1, None, 1), (2, "x", 2),
    (2, "\u00b2", 2),  # '²'.isdigit() holds and int() refuses it: read as unset, not a ValueError
])
def test_attention_streams_leave_the_blas_threads_their_cores(monkeypatch: pytest.MonkeyPatch, cores: int,
                                                              blas: str | None, expected: int) -> None:
    monkeypatch.setattr(cpu_attention, "usable_cores", lambda: cores)
    if blas is None:
        monkeypatch.delenv(cpu_attention.BLAS_THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(cpu_attention.BLAS_THREADS_ENV, blas)
    assert cpu_attention.default_threads() == expected
