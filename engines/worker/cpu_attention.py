"""Attention spread across CPU cores.

MLX's CPU backend runs the operations of one stream on one thread (and the BLAS bundled with the Linux `mlx[cpu]`
wheel is single-threaded), so a forward pass uses one core however many the machine has. (With an OpenBLAS whose
calls use several threads, only the cores those threads leave free get a stream: `default_threads`.) The part of a
prefill that grows with the conversation is attention: with the prefix cache, turn N of an agent loop prefills only
its new tokens, but each of them attends to the whole context.

`install` gives the loaded model's modules an attention function that, on the CPU and when the work is large
enough, cuts the queries (or, for a batched decode, the batch) into one slice per core, runs each slice on its own
CPU stream and joins the results. Slices are independent rows of the same computation, so the output does not
change (bit for bit with the reference BLAS; OpenBLAS may round the last bit differently for another row count,
engines/worker/blas.py); with a causal mask each query slice also skips the keys after its last query. On a GPU
nothing is installed: the fused kernel there already uses the whole device.

The replacement is process-wide for the model's modules (a worker serves one model) and keeps calling mlx-lm's
own function for everything it does not split (quantized caches, small calls).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import mlx.core as mx
from mlx_lm.models import base

log = logging.getLogger("agentgate.engine")

MAX_THREADS = 8
BLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"
# query x key scores per call below which splitting gains too little to pay for the extra graph nodes
MIN_SCORES = 1 << 16
# fewest query rows (or batch rows) in a slice
MIN_ROWS = 8

AttentionFn = Callable[..., mx.array]
_NAME = "scaled_dot_product_attention"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def blas_threads() -> int:
    """The threads each BLAS call may use: `OPENBLAS_NUM_THREADS` where an OpenBLAS is bound (the bundled reference
    BLAS is single-threaded and ignores it)."""
    value = os.environ.get(BLAS_THREADS_ENV, "").strip()
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else 1


def default_threads() -> int:
    """Attention streams: one per core that the BLAS leaves free. Each stream's attention calls the BLAS for its
    matrix products, so streams x BLAS threads above the core count oversubscribe the cores (OpenBLAS's threads spin
    while they wait): on 2 cores a suffix prefill (256 tokens over 2000) took 9.8 s split in 2 with 2 OpenBLAS
    threads against 7.4 s unsplit, and 2.1 s split with 1 OpenBLAS thread against 3.0 s unsplit."""
    return max(1, min(MAX_THREADS, usable_cores() // blas_threads()))


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    step, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        end = start + step + (1 if i < extra else 0)
        out.append((start, end))
        start = end
    return out


class ParallelAttention:
    """A drop-in for `mlx_lm.models.base.scaled_dot_product_attention` that splits large CPU calls."""

    def __init__(self, threads: int, original: AttentionFn = base.scaled_dot_product_attention, *,
                 min_scores: int = MIN_SCORES, min_rows: int = MIN_ROWS) -> None:
        self.threads = max(1, threads)
        self.original = original
        self.min_scores = min_scores
        self.min_rows = min_rows
        self.split_calls = 0
        self._local = threading.local()  # streams belong to the thread that made them

    def _streams(self) -> list[Any]:
        streams: list[Any] | None = getattr(self._local, "streams", None)
        if streams is None or len(streams) != self.threads:
            streams = [mx.new_stream(mx.cpu) for _ in range(self.threads)]
            self._local.streams = streams
        return streams

    def __call__(self, queries: mx.array, keys: mx.array, values: mx.array, cache: Any, scale: float,
                 mask: Any, sinks: mx.array | None = None) -> mx.array:
        b, h, length, _ = queries.shape
        total = keys.shape[-2]
        if (self.threads < 2 or hasattr(cache, "bits") or b * h * length * total < self.min_scores
                or mx.default_device() != mx.cpu):
            return self.original(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)
        if length >= 2 * self.min_rows:
            parts = min(self.threads, length // self.min_rows)
            out = self._split_queries(queries, keys, values, scale, mask, sinks, parts)
        elif b >= 2:
            out = self._split_batch(queries, keys, values, scale, mask, sinks, min(self.threads, b))
        else:
            return self.original(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)
        self.split_calls += 1
        return out

    def _split_queries(self, q: mx.array, k: mx.array, v: mx.array, scale: float, mask: Any,
                       sinks: mx.array | None, parts: int) -> mx.array:
        length, total = q.shape[2], k.shape[-2]
        outs = []
        for (start, end), stream in zip(_bounds(length, parts), self._streams(), strict=False):
            keys, values, part_mask = k, v, mask
            if isinstance(mask, str):  # "causal": aligned bottom-right, so cutting the keys keeps it exact
                seen = total - length + end
                keys, values = k[:, :, :seen], v[:, :, :seen]
            elif isinstance(mask, mx.array) and mask.ndim >= 2 and mask.shape[-2] == length:
                part_mask = mask[..., start:end, :]
            outs.append(mx.fast.scaled_dot_product_attention(
                q[:, :, start:end], keys, values, scale=scale, mask=part_mask, sinks=sinks, stream=stream))
        return mx.concatenate(outs, axis=2)

    def _split_batch(self, q: mx.array, k: mx.array, v: mx.array, scale: float, mask: Any,
                     sinks: mx.array | None, parts: int) -> mx.array:
        outs = []
        for (start, end), stream in zip(_bounds(q.shape[0], parts), self._streams(), strict=False):
            part_mask = mask
            if isinstance(mask, mx.array) and mask.ndim == 4 and mask.shape[0] == q.shape[0]:
                part_mask = mask[start:end]
            outs.append(mx.fast.scaled_dot_product_attention(
                q[start:end], k[start:end], v[start:end], scale=scale, mask=part_mask, sinks=sinks, stream=stream))
        return mx.concatenate(outs, axis=0)


def install(model: Any, threads: int) -> ParallelAttention | None:
    """Give the modules `model` is built from a splitting attention with `threads` streams.

    Returns it, or None where splitting does not apply (a GPU, one thread, or a model that does not use mlx-lm's
    attention function); then mlx-lm's own function is put back where an earlier call had replaced it."""
    targets: list[ModuleType] = []
    current: ParallelAttention | None = None
    for name in sorted({type(m).__module__ for m in model.modules()}):
        module = sys.modules.get(name)
        if module is None:
            continue
        fn = getattr(module, _NAME, None)
        if isinstance(fn, ParallelAttention):
            current = fn
            targets.append(module)
        elif fn is base.scaled_dot_product_attention:
            targets.append(module)
    if threads < 2 or mx.default_device() != mx.cpu or not targets:
        for module in targets:
            setattr(module, _NAME, base.scaled_dot_product_attention)
        return None
    attention = current or ParallelAttention(threads)
    attention.threads = threads
    for module in targets:
        setattr(module, _NAME, attention)
    log.info("attention split across %d CPU streams (%s)", threads, ", ".join(m.__name__ for m in targets))
    return attention
