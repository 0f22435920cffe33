"""Per-request sampling: mlx-lm samplers and logits processors built from validated request parameters.

Samplers are built on the MLX thread. A request with a `seed` gets a sampler that draws from its own PRNG key,
so its samples do not depend on what else is in the batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
from mlx_lm.sample_utils import (
    apply_min_p,
    apply_top_k,
    apply_top_p,
    make_logits_processors,
    make_sampler,
)

Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float | None = None
    repetition_context_size: int = 20
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class SeededSampler:
    """The `make_sampler` chain (top_p, min_p, top_k, categorical) drawing from a private PRNG key."""

    def __init__(self, params: SamplingParams, vocab_size: int) -> None:
        assert params.seed is not None
        self._params = params
        self._top_k = params.top_k if 0 < params.top_k < vocab_size else 0
        self._key = mx.random.key(params.seed)

    def __call__(self, logprobs: mx.array) -> mx.array:
        p = self._params
        if 0 < p.top_p < 1.0:
            logprobs = apply_top_p(logprobs, p.top_p)
        if p.min_p != 0.0:
            logprobs = apply_min_p(logprobs, p.min_p)
        if self._top_k > 0:
            logprobs = apply_top_k(logprobs, self._top_k)
        self._key, sub = mx.random.split(self._key)
        return mx.random.categorical(logprobs * (1 / p.temperature), key=sub)


def build_sampler(params: SamplingParams, vocab_size: int) -> Sampler | None:
    """None means the batch's shared greedy sampler (one batched argmax for every greedy sequence)."""
    if params.greedy:
        return None
    if params.seed is not None:
        return SeededSampler(params, vocab_size)
    top_k = params.top_k if 0 < params.top_k < vocab_size else 0
    return make_sampler(params.temperature, top_p=params.top_p, min_p=params.min_p, top_k=top_k)


def build_logits_processors(params: SamplingParams) -> list[LogitsProcessor]:
    return make_logits_processors(
        params.logit_bias or None,
        params.repetition_penalty,
        params.repetition_context_size,
        params.presence_penalty,
        params.repetition_context_size,
        params.frequency_penalty,
        params.repetition_context_size,
    )


@dataclass
class Fault:
    """Set when a sequence's own sampler or logits processor raised during a batch step."""

    error: str | None = None


class GuardedSampler:
    """Runs a sequence's sampler; if it raises, records the fault and samples greedily so the batch step (and
    every other sequence in it) completes. The scheduler then fails just this sequence."""

    def __init__(self, inner: Sampler, fault: Fault) -> None:
        self._inner = inner
        self._fault = fault

    def __call__(self, logprobs: mx.array) -> mx.array:
        if self._fault.error is None:
            try:
                return self._inner(logprobs)
            except Exception as exc:
                self._fault.error = f"sampling failed: {exc}"
                # A sampler compiled with the global PRNG state as input can leave that state as a dangling
                # tracer when it raises; give the other sequences a fresh one.
                mx.random.seed(secrets.randbits(32))
        return mx.argmax(logprobs, axis=-1)


def _guard_processor(inner: LogitsProcessor, fault: Fault) -> LogitsProcessor:
    def guarded(tokens: Any, logits: mx.array) -> mx.array:
        if fault.error is None:
            try:
                return inner(tokens, logits)
            except Exception as exc:
                fault.error = f"a logits processor failed: {exc}"
        return logits

    return guarded


def guard(sampler: Sampler | None, processors: list[LogitsProcessor], fault: Fault
          ) -> tuple[Sampler | None, list[LogitsProcessor]]:
    """Wrap one sequence's sampler and processors so that their failures stay with that sequence."""
    return (
        None if sampler is None else GuardedSampler(sampler, fault),
        [_guard_processor(p, fault) for p in processors],
    )
