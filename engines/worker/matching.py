"""Running grammars during decoding: llguidance matchers as per-sequence logits processors.

`GrammarCache` compiles each grammar once against the model's tokenizer and keeps the compiled matcher (bounded,
least recently used first out); every sequence gets its own cheap copy. `GrammarProcessor` is one sequence's
matcher: it feeds the matcher the token sampled at the step before, computes the allowed-token bitmask and masks
that sequence's row of logits — as an mlx-lm logits processor for the sequence's first token, then in
`MaskedModel`'s batched pass, whose grammar work runs on `GRAMMAR_THREAD` while MLX evaluates the forward pass. A
sequence without a grammar has no processor and pays nothing.

A lazy processor (tool_choice "auto") watches for the call opener token and masks nothing until it appears; the
call that follows is constrained, then the watch starts again.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import mlx.core as mx
import numpy as np

log = logging.getLogger("agentgate.engine")

MAX_GRAMMARS = 64
NEG_INF = -float("inf")
# mlx's stub leaves async_eval unannotated; typed here once
_async_eval: Callable[..., None] = mx.async_eval


def make_llg_tokenizer(hf_tokenizer: Any, vocab_size: int) -> Any:
    """An llguidance tokenizer over a Hugging Face fast tokenizer (about a second for a 150k vocabulary)."""
    import llguidance

    backend = copy_backend(hf_tokenizer)
    eos = getattr(hf_tokenizer, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    # JSON slices: token classes for JSON strings and numbers, so a mask inside a string is a few set operations
    # (about 5 us on the tiny models' vocabulary vs about 110 us with the general slices).
    return llguidance.LLTokenizer(backend.to_str(), n_vocab=vocab_size, eos_token=eos,
                                  slices=llguidance.LLTokenizer.json_slices())


def copy_backend(hf_tokenizer: Any) -> Any:
    import copy

    backend = getattr(hf_tokenizer, "backend_tokenizer", None) or getattr(hf_tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "to_str"):
        raise TypeError("constrained decoding needs a fast (Rust) tokenizer")
    backend = copy.copy(backend)
    backend.no_padding()
    backend.no_truncation()
    return backend


@dataclass
class CacheStats:
    compiled: int = 0
    hits: int = 0
    failed: int = 0


class GrammarCache:
    """Compiled grammars by text; thread-safe. `matcher()` returns a fresh per-sequence matcher or raises
    `GrammarError` when the library cannot compile the grammar (cached too, so a bad schema costs once)."""

    def __init__(self, llg_tokenizer: Any, max_entries: int = MAX_GRAMMARS) -> None:
        self.tokenizer = llg_tokenizer
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def matcher(self, grammar: str) -> Any:
        import llguidance

        key = hashlib.sha256(grammar.encode()).hexdigest()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
        if entry is None:
            entry = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
            if entry.is_error():
                entry = GrammarError(entry.get_error())
                self.stats.failed += 1
            else:
                self.stats.compiled += 1
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        if isinstance(entry, GrammarError):
            raise entry
        return entry.deep_copy()

    def token_id(self, text: str) -> int | None:
        """The id of the one token that is exactly `text`, None when `text` takes several tokens."""
        ids = self.tokenizer.tokenize_str(text)
        return ids[0] if len(ids) == 1 else None

    def special_token(self, text: str) -> int | None:
        """The id of the special token `text` (a marker the grammar must name as a token), else None."""
        token = self.token_id(text)
        return token if token is not None and self.tokenizer.is_special_token(token) else None

    def __len__(self) -> int:
        return len(self._entries)


class GrammarError(Exception):
    pass


def is_panic(exc: BaseException) -> bool:
    """Whether `exc` is pyo3's PanicException (a Rust panic in llguidance), a BaseException that an
    `except Exception` lets through."""
    return type(exc).__name__ == "PanicException"


@dataclass
class ConstraintState:
    """What one sequence's processor observed; read by the worker after the sequence ends."""

    steps: int = 0  # steps with a mask applied
    triggers: int = 0  # lazy: calls started by the opener
    completed: int = 0  # grammar runs that reached their end
    broken: str | None = None  # the matcher rejected a sampled token (then decoding went on unconstrained)


def closing_tokens(llg_tokenizer: Any, n_vocab: int) -> np.ndarray:
    """How strongly each token closes JSON: 2 for tokens holding `"`, `]` or `}` (and EOS), which end strings,
    arrays and objects; 1 for `,`, which ends a number or value; 0 for the rest."""
    out = np.zeros(n_vocab, dtype=np.int8)
    for token in range(min(n_vocab, llg_tokenizer.vocab_size)):
        data = llg_tokenizer.decode_bytes([token])
        if any(c in data for c in (b'"', b"]", b"}")):
            out[token] = 2
        elif b"," in data:
            out[token] = 1
    if 0 <= llg_tokenizer.eos_token < n_vocab:
        out[llg_tokenizer.eos_token] = 2
    return out


class MaskCache:
    """Allowed-token masks as MLX arrays by bitmask (bounded, least recently used out; MLX thread only). Inside a
    JSON string or number most steps allow the same set, so most steps reuse an array instead of building one."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._masks: OrderedDict[bytes, mx.array] = OrderedDict()
        self.hits = 0

    def get(self, key: bytes) -> mx.array | None:
        mask = self._masks.get(key)
        if mask is not None:
            self._masks.move_to_end(key)
            self.hits += 1
        return mask

    def put(self, key: bytes, mask: mx.array) -> None:
        self._masks[key] = mask
        while len(self._masks) > self.max_entries:
            self._masks.popitem(last=False)


class GrammarProcessor:
    """One sequence's matcher as an mlx-lm logits processor `(tokens, logits) -> logits`.

    A runaway guard: once the sequence has used half of its token budget (`budget`, its max_tokens) inside the
    grammar, the allowed tokens that close a string, array or object, else a value (`closing`), are preferred, so that
    a call a model cannot finish by itself (a string that never closes) still ends valid within the budget.
    """

    def __init__(self, matcher: Any, n_vocab: int, *, trigger: int | None = None, eos: int | None = None,
                 closing: np.ndarray | None = None, budget: int | None = None,
                 masks: MaskCache | None = None) -> None:
        self._m = matcher
        self._masks = masks or MaskCache(8)
        self._closing = closing
        self.budget = budget
        self._inside = 0  # tokens generated under the grammar
        self._words = np.zeros((1, (n_vocab + 31) // 32), dtype=np.int32)
        self._trigger = trigger
        self._active = trigger is None
        self._eos = eos
        self._calls = 0
        self._wrap = False  # this step prefers closing tokens (the runaway guard)
        self.state = ConstraintState()

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._calls:
            # Start this step's forward pass before waiting for the previous token, so that the wait and the
            # mask computation overlap it instead of stalling the pipeline.
            _async_eval(logits)
        if not self.prepare(cast(int, tokens[-1].item()) if self._calls else None):
            return logits
        return mx.where(self.row(logits.shape[-1]), logits, NEG_INF)

    def prepare(self, token: int | None) -> bool:
        """One step's grammar work: feed the token sampled at the step before (None on the sequence's first step)
        and compute this step's allowed-token bitmask; False when this step masks nothing. No MLX work, so it
        may run on the grammar thread while the MLX thread evaluates the step's forward pass."""
        if self._calls and token is not None:
            self._advance(token)
        self._calls += 1
        if not self._active or self.state.broken is not None:
            return False
        self._inside += 1
        self._m.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)
        self.state.steps += 1
        self._wrap = self._closing is not None and self.budget is not None and 2 * self._inside > self.budget
        return True

    def row(self, vocab: int) -> mx.array:
        """The allowed tokens `prepare` computed, as a bool row of `vocab` (MLX thread: the arrays are cached)."""
        key = self._words.tobytes() + (b"w" if self._wrap else b"")
        allowed = self._masks.get(key)
        if allowed is None or allowed.shape[-1] != vocab:
            allowed = self._allowed(vocab, self._wrap)
            self._masks.put(key, allowed)
        return allowed

    def _advance(self, token: int) -> None:
        if self.state.broken is not None:
            return
        if not self._active:
            if token == self._trigger:
                self._active = True
                self.state.triggers += 1
            return
        if not self._m.consume_token(token):
            if token == self._eos:
                return
            self.state.broken = self._m.get_error() or f"token {token} rejected"
            log.warning("a constrained sequence left its grammar: %s", self.state.broken)
            return
        if self._m.is_stopped():
            self.state.completed += 1
            if self._trigger is not None:  # lazy: back to watching for the next call
                self._m.reset()
                self._active = False

    def _allowed(self, vocab: int, wrap: bool) -> mx.array:
        bits = np.unpackbits(self._words.view(np.uint8), bitorder="little").astype(np.bool_)
        if bits.shape[0] < vocab:
            bits = np.concatenate([bits, np.zeros(vocab - bits.shape[0], dtype=np.bool_)])
        bits = bits[:vocab]
        if wrap and self._closing is not None and self._closing.shape[0] >= vocab:
            for level in (2, 1):  # the strongest closers the grammar allows, else all it allows
                closing = bits & (self._closing[:vocab] >= level)
                if closing.any():
                    bits = closing
                    break
        return mx.array(bits)


Row = tuple[GrammarProcessor, Any]  # a constrained row of the decode batch: its processor and its `Fault`


class MaskedModel:
    """The model as the batch generator calls it, with one batched mask pass per decode step.

    The scheduler arms it before a step with one entry per row of the decode batch (a `Row`, or None for a row
    without a grammar) and the step's input tokens (the tokens the rows sampled at the step before, which mlx-lm
    has already scheduled). `arm` reads those tokens and hands the rows' grammar work (feed the token, compute the
    bitmask: llguidance, no MLX) to the grammar thread; the next call (the step's forward pass) starts the forward
    pass, which releases the GIL while MLX computes it, so the masks are computed meanwhile; then every
    constrained row of the logits is masked in one `where`. Prefill calls and steps without a constrained row are
    passed straight through, so a batch without grammars pays nothing. All MLX work stays on the calling thread.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._rows: list[Row | None] | None = None
        self._work: queue.SimpleQueue[Any] | None = None
        self._all: dict[int, mx.array] = {}

    def __getattr__(self, name: str) -> Any:  # layers, make_cache, args ...: the model's own
        return getattr(self.__dict__["model"], name)

    def arm(self, rows: list[Row | None], tokens: mx.array | None = None) -> None:
        """This step's rows; with `tokens` (the step's input, one per row) their grammar work starts now."""
        self.disarm()
        self._rows = rows
        if tokens is not None:
            ids = cast(list[int], tokens.tolist())
            if len(ids) == len(rows):
                self._work = GRAMMAR_THREAD.submit(rows, ids)

    def disarm(self) -> None:
        self._rows = None
        work, self._work = self._work, None
        if work is not None:  # a step that never ran: let its grammar work end before any other starts
            work.get()

    def __call__(self, inputs: mx.array, *args: Any, **kwargs: Any) -> mx.array:
        logits: mx.array = self.model(inputs, *args, **kwargs)
        rows, work = self._rows, self._work
        self._rows = self._work = None
        if rows is None:
            return logits
        if inputs.ndim != 2 or inputs.shape[0] != len(rows):
            if work is not None:
                work.get()
            return logits
        _async_eval(logits)  # the forward pass runs while the grammar thread computes the masks
        prepared = work.get() if work is not None else _prepare(rows, cast(list[int], inputs[:, -1].tolist()))
        if isinstance(prepared, BaseException):
            raise prepared
        vocab = logits.shape[-1]
        masks: list[mx.array | None] = []
        for row, done in zip(rows, prepared, strict=True):
            masks.append(None if row is None or done is False else _mask(row, done, vocab))
        if all(m is None for m in masks):
            return logits
        if len(masks) == 1 and masks[0] is not None:
            mask = masks[0]
        else:
            everything = self._all.get(vocab)
            if everything is None:
                everything = self._all[vocab] = mx.ones((vocab,), dtype=mx.bool_)
            mask = mx.stack([everything if m is None else m for m in masks])[:, None, :]
        return mx.where(mask, logits, NEG_INF)


def _mask(row: Row, prepared: bool | Exception, vocab: int) -> mx.array | None:
    proc, fault = row
    try:
        if isinstance(prepared, Exception):
            raise prepared
        return proc.row(vocab)
    except Exception as exc:  # this sequence fails (the scheduler reads its fault); the batch goes on
        fault.error = f"a logits processor failed: {exc}"
        return None


def _prepare(rows: list[Row | None], tokens: list[int]) -> list[bool | Exception]:
    """Each constrained row's grammar work for one step (see `GrammarProcessor.prepare`); a row's failure is
    returned in its place, so the other rows go on."""
    out: list[bool | Exception] = []
    for row, token in zip(rows, tokens, strict=True):
        if row is None or row[1].error is not None:
            out.append(False)
            continue
        try:
            out.append(row[0].prepare(token))
        except Exception as exc:
            out.append(exc)
    return out


class GrammarThread:
    """The thread that runs the batched steps' grammar work, one step's rows at a time, in order. llguidance
    releases the GIL while it computes a mask and MLX releases it while it evaluates the forward pass, so the two
    overlap. A job is handed over and answered through C-level queues (a few microseconds, where a thread pool's
    future costs tens)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[list[Row | None], list[int], queue.SimpleQueue[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, rows: list[Row | None], tokens: list[int]) -> queue.SimpleQueue[Any]:
        """Start one step's work; `get()` on the returned queue waits for its `_prepare` result (or exception)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agentgate-grammar", daemon=True)
                self._thread.start()
        answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs.put((rows, tokens, answer))
        return answer

    def _run(self) -> None:
        while True:
            rows, tokens, answer = self._jobs.get()
            try:
                answer.put(_prepare(rows, tokens))
            except BaseException as exc:  # never leave the MLX thread waiting
                answer.put(exc)


GRAMMAR_THREAD = GrammarThread()
