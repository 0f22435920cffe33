"""Continuous batching on one dedicated MLX thread.

All MLX work (loading, prefill, decoding, prefix-cache copies, memory readings) happens on the scheduler's thread,
which runs mlx-lm's `BatchGenerator`. Sequences join and leave the running batch at every step. The asyncio side
talks to it through a thread-safe command queue (submit, cancel, stop); events travel back through
`loop.call_soon_threadsafe`, one call per step. A failure while admitting or decoding one sequence fails that
sequence only; a failure of a whole batch step fails the sequences in that batch and the generator is rebuilt.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from engines.worker.cpu_attention import ParallelAttention, default_threads
from engines.worker.cpu_attention import install as install_attention
from engines.worker.decoding import Detokenizers, OutputDecoder, Piece
from engines.worker.kv_disk import DiskKV, model_identity
from engines.worker.matching import GrammarProcessor, MaskedModel
from engines.worker.prefix_cache import PrefixCache
from engines.worker.sampling import Fault, SamplingParams, build_logits_processors, build_sampler, guard
from engines.worker.tiny import TinyCacheError

log = logging.getLogger("agentgate.engine")

DEFAULT_MAX_CONTEXT = 32768
PERSIST_IDLE_SECONDS = 0.25  # idle time after which new prefix-cache entries are written to disk
KV_FLUSH_SECONDS = 8.0  # at most this long writing the KV cache at shutdown (the supervisor waits 10 s)


@dataclass
class SequenceSpec:
    """One generation, as the asyncio side submits it."""

    prompt: list[int]
    max_tokens: int
    sampling: SamplingParams
    stop: list[str] = field(default_factory=list)
    think: tuple[str, str] | None = None
    reasoning: bool = False
    # Run after the sampling processors, on this sequence's row only (e.g. a grammar's token mask).
    logits_processors: list[Any] = field(default_factory=list)
    continued: bool = False  # the output continues the prompt's last message (`OutputDecoder`'s `continued`)


@dataclass
class Started:
    cached_tokens: int


@dataclass
class Delta:
    pieces: list[Piece]


@dataclass
class Finished:
    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    stop: str | None = None  # the stop string that ended the text (reason "stop"; None: EOS)
    reasoning_tokens: int = 0  # of completion_tokens, those of a <think> block


@dataclass
class Failed:
    status: int
    message: str
    code: str


Event = Started | Delta | Finished | Failed


class SequenceHandle:
    """The asyncio side of one submitted sequence."""

    def __init__(self, seq_id: int, spec: SequenceSpec) -> None:
        self.id = seq_id
        self.spec = spec
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.done = False

    def _put(self, event: Event) -> None:
        self._events.put_nowait(event)

    async def next_events(self) -> list[Event]:
        """At least one event; everything already queued is returned with it."""
        events = [await self._events.get()]
        while not self._events.empty():
            events.append(self._events.get_nowait())
        if isinstance(events[-1], (Finished, Failed)):
            self.done = True
        return events


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    config: dict[str, Any]
    path: str


@dataclass
class _Seq:
    handle: SequenceHandle
    uid: int
    decoder: OutputDecoder
    cached_tokens: int
    fault: Fault
    decoding: bool = False
    generated: int = 0
    # A grammar runs as this row's own logits processor for the first token only, then in the batched mask
    # pass (`MaskedModel`); `processors` is the row's list without it.
    grammar: GrammarProcessor | None = None
    processors: list[Any] = field(default_factory=list)
    batched: bool = False


@dataclass
class SchedulerStats:
    submitted: int = 0
    admitted: int = 0
    served: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    prefilling: int = 0
    peak_batch: int = 0
    steps: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    active_memory: int = 0
    peak_memory: int = 0
    cache_memory: int = 0
    cache: dict[str, int] = field(default_factory=dict)


_STOP = object()
Loader = Callable[[], LoadedModel]


def default_loader(model_ref: str) -> Loader:
    """Resolve `tiny:` specs, then load with mlx-lm (runs on the MLX thread)."""

    def load() -> LoadedModel:
        from mlx_lm import load as mlx_load

        from engines.worker.tiny import resolve_model_spec

        started = time.perf_counter()
        path = resolve_model_spec(model_ref)
        if path != model_ref:
            log.info("%s is %s (%.1fs)", model_ref, path, time.perf_counter() - started)
        log.info("loading weights and tokenizer from %s", path)
        # with return_config=True mlx-lm returns a third item its annotation leaves out
        model, tokenizer, config = cast(tuple[Any, Any, dict[str, Any]], mlx_load(path, return_config=True))
        log.info("model loaded in %.1fs (%s)", time.perf_counter() - started, config.get("model_type", "?"))
        return LoadedModel(model, tokenizer, dict(config), path)

    return load


class Scheduler:
    def __init__(
        self,
        loader: Loader,
        *,
        max_batch: int = 32,
        cache_bytes: int = 2 << 30,
        prefill_step_size: int = 2048,
        max_context: int | None = None,
        cpu_threads: int | None = None,
        kv_dir: str | None = None,
        kv_disk_bytes: int = 4 << 30,
    ) -> None:
        self._loader = loader
        self._kv_dir = kv_dir
        self._kv_disk_bytes = kv_disk_bytes
        self._cpu_threads = cpu_threads
        self.max_batch = max(1, max_batch)
        self._cache_bytes = cache_bytes
        self._prefill_step_size = prefill_step_size
        self._max_context_opt = max_context
        self._commands: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Held around every use of the tokenizer object from a second thread (templates, naive detokenizers).
        self.tokenizer_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loaded: asyncio.Future[None] | None = None
        self.loaded: LoadedModel | None = None
        self.load_seconds: float | None = None
        self.stats = SchedulerStats()
        self.alive = False
        self._accepting = False  # submit() queues only while the MLX thread will still take commands
        self._accept_lock = threading.Lock()  # orders that against the thread's last look at the queue
        self.attention: ParallelAttention | None = None
        # MLX-thread state
        self._bg: Any = None
        self._masked: MaskedModel | None = None
        self._eos: Any = None
        self._cache: PrefixCache | None = None
        self._detokenizers: Detokenizers | None = None
        self._seqs: dict[int, _Seq] = {}
        self._uid_of: dict[int, int] = {}
        self._outbox: list[tuple[SequenceHandle, Event]] = []

    # -- asyncio side ----------------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._loaded = self._loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, name="agentgate-mlx", daemon=True)
        self.alive = True
        self._accepting = True
        self._thread.start()

    async def wait_loaded(self) -> LoadedModel:
        assert self._loaded is not None, "start() first"
        await asyncio.shield(self._loaded)
        assert self.loaded is not None
        return self.loaded

    @property
    def ready(self) -> bool:
        return self.loaded is not None and self.alive

    @property
    def vocab_size(self) -> int:
        assert self.loaded is not None
        args = getattr(self.loaded.model, "args", None)
        size = getattr(args, "vocab_size", None) or self.loaded.config.get("vocab_size")
        return int(size) if size else len(self.loaded.tokenizer)

    @property
    def max_context(self) -> int:
        if self._max_context_opt:
            return self._max_context_opt
        assert self.loaded is not None
        cfg = self.loaded.config
        for key in ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length"):
            value = cfg.get(key) or (cfg.get("text_config") or {}).get(key)
            if isinstance(value, int) and value > 0:
                return value
        return DEFAULT_MAX_CONTEXT

    def submit(self, spec: SequenceSpec) -> SequenceHandle:
        """The sequence queued for the MLX thread; once the engine stops (or is stopping) it fails at once with a
        503 instead: a request that came in while the engine shut down would otherwise wait for ever."""
        handle = SequenceHandle(next(self._ids), spec)
        self.stats.submitted += 1
        with self._accept_lock:
            if self._accepting:
                self._commands.put(("submit", handle))
                return handle
        self.stats.admitted += 1
        self.stats.failed += 1
        handle._put(Failed(503, "the engine is shutting down", "engine_stopped"))
        return handle

    def cancel(self, handle: SequenceHandle) -> None:
        """Take the sequence out of the batch (before the next step). Idempotent."""
        if not handle.done:
            handle.done = True
            self._commands.put(("cancel", handle.id))

    async def close(self) -> None:
        if self._thread is None:
            return
        with self._accept_lock:
            self._accepting = False
        self._commands.put(_STOP)
        thread = self._thread
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        self._thread = None

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "queue": max(0, s.submitted - s.admitted) + s.prefilling,
            "running": s.running,
            "max_batch": self.max_batch,
            "peak_batch": s.peak_batch,
            "steps": s.steps,
            "requests": {
                "served": s.served,
                "failed": s.failed,
                "cancelled": s.cancelled,
                "active": s.admitted - s.served - s.failed - s.cancelled,
            },
            "tokens": {"prompt": s.prompt_tokens, "cached": s.cached_tokens, "generated": s.generated_tokens},
            "cache": self._cache_counts(),
            "memory": {"active": s.active_memory, "peak": s.peak_memory, "cache": s.cache_memory},
            "cpu_attention": {
                "threads": self.attention.threads if self.attention else 1,
                "split_calls": self.attention.split_calls if self.attention else 0,
            },
        }

    def _cache_counts(self) -> dict[str, Any]:
        """The cache's counts as of the MLX thread's last step, the disk's read now: its writes finish in their own
        thread, after the MLX thread went idle (its counts would wait for the next request)."""
        counts: dict[str, Any] = dict(self.stats.cache)
        disk = self._cache.disk if self._cache is not None else None
        if disk is not None:
            counts.update({f"disk_{k}": v for k, v in disk.snapshot().items()})
        return counts

    def _deliver(self, events: list[tuple[SequenceHandle, Event]]) -> None:
        for handle, event in events:
            handle._put(event)

    def _notify_loaded(self, error: BaseException | None) -> None:
        assert self._loaded is not None
        if self._loaded.done():
            return
        if error is None:
            self._loaded.set_result(None)
        else:
            self._loaded.set_exception(error)

    # -- MLX thread -------------------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        assert self._loop is not None
        try:
            import mlx.core as mx

            started = time.perf_counter()
            loaded = self._loader()
            threads = default_threads() if self._cpu_threads is None else self._cpu_threads
            self.attention = install_attention(loaded.model, threads)
            self._stream = mx.default_stream(mx.default_device())
            self._cache = PrefixCache(self._cache_bytes, disk=self._open_disk(loaded))
            self._make_generator(loaded)
            with self.tokenizer_lock:
                self._detokenizers = Detokenizers(loaded.tokenizer)
            self.load_seconds = time.perf_counter() - started
            self.loaded = loaded
            self._read_memory()
            self._update_counts()
        except BaseException as exc:  # reported to wait_loaded(); the worker exits
            self.alive = False
            with self._accept_lock:
                self._accepting = False
            self._drain_rejecting()
            self._flush()
            if isinstance(exc, TinyCacheError):  # says all there is to say in one line
                log.error("loading the model failed: %s", exc)
            else:
                log.exception("loading the model failed")
            self._loop.call_soon_threadsafe(self._notify_loaded, exc)
            return
        self._loop.call_soon_threadsafe(self._notify_loaded, None)
        try:
            self._run()
        except BaseException:
            log.exception("the MLX thread stopped unexpectedly")
        finally:
            self.alive = False
            with self._accept_lock:  # after this, submit() fails a sequence itself: nothing more is queued
                self._accepting = False
            self._fail_all(503, "the engine is shutting down", "engine_stopped")
            self._drain_rejecting()
            self._flush()
            self._close_disk()

    def _open_disk(self, loaded: LoadedModel) -> DiskKV | None:
        if not self._kv_dir or self._kv_disk_bytes <= 0 or self._cache_bytes <= 0:
            return None
        try:
            disk = DiskKV(self._kv_dir, model_identity(loaded.path), self._kv_disk_bytes)
            disk.open()
        except OSError as exc:
            log.warning("KV cache on disk disabled: %s", exc)
            return None
        return disk

    def _close_disk(self) -> None:
        """On shutdown: write what is not on disk yet (bounded time), so a reloaded engine resumes from it."""
        cache = self._cache
        if cache is None or cache.disk is None:
            return
        try:
            cache.persist()
            if not cache.disk.flush(KV_FLUSH_SECONDS):
                log.warning("KV cache writes still pending at shutdown were abandoned")
            cache.disk.close(1.0)
        except Exception:
            log.exception("writing the KV cache at shutdown failed")

    def _make_generator(self, loaded: LoadedModel) -> None:
        from mlx_lm.generate import BatchGenerator, make_stop_sequences

        stop_sequences: Callable[[Any], Any] = make_stop_sequences  # unannotated in mlx-lm
        self._eos = stop_sequences(loaded.tokenizer)
        self._masked = MaskedModel(loaded.model)
        self._bg = BatchGenerator(
            self._masked,
            completion_batch_size=self.max_batch,
            prefill_batch_size=min(8, self.max_batch),
            prefill_step_size=self._prefill_step_size,
            stream=self._stream,
        )

    def _run(self) -> None:
        while True:
            cmds = self._take_commands(block=not self._seqs)
            if not cmds and not self._seqs:  # idle for a moment: write new cache entries to disk
                assert self._cache is not None
                self._cache.persist()
                self._update_counts()  # (the disk's counts in /stats)
                continue
            for i, cmd in enumerate(cmds):
                if cmd is _STOP:  # what came with it is refused with the rest of the queue (see _thread_main)
                    self._reject([c for c in cmds[i + 1:] if c is not _STOP])
                    return
                kind, payload = cmd
                if kind == "submit":
                    self._admit(payload)
                elif kind == "cancel":
                    self._cancel(payload)
            if self._seqs:
                self._step()
            self._update_counts()
            self._flush()

    def _take_commands(self, *, block: bool) -> list[Any]:
        cmds = []
        if block:
            if self._cache is not None and self._cache.has_unsaved:
                try:  # persist only once no request came for a moment, off the hot path
                    cmds.append(self._commands.get(timeout=PERSIST_IDLE_SECONDS))
                except queue.Empty:
                    return cmds
            else:
                cmds.append(self._commands.get())
        while True:
            try:
                cmds.append(self._commands.get_nowait())
            except queue.Empty:
                return cmds

    def _drain_rejecting(self) -> None:
        self._reject(self._take_commands(block=False))

    def _reject(self, cmds: list[Any]) -> None:
        for cmd in cmds:
            if cmd is not _STOP and cmd[0] == "submit":
                self.stats.admitted += 1
                self.stats.failed += 1
                self._emit(cmd[1], Failed(503, "the engine is shutting down", "engine_stopped"))

    def _emit(self, handle: SequenceHandle, event: Event) -> None:
        self._outbox.append((handle, event))

    def _flush(self) -> None:
        if self._outbox and self._loop is not None and not self._loop.is_closed():
            events, self._outbox = self._outbox, []
            try:
                self._loop.call_soon_threadsafe(self._deliver, events)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _admit(self, handle: SequenceHandle) -> None:
        assert self._detokenizers is not None and self._cache is not None
        self.stats.admitted += 1
        spec = handle.spec
        try:
            found = self._cache.lookup(spec.prompt)
            fault = Fault()
            grammars = [p for p in spec.logits_processors if isinstance(p, GrammarProcessor)]
            others = [p for p in spec.logits_processors if not isinstance(p, GrammarProcessor)]
            base = build_logits_processors(spec.sampling) + others
            sampler, processors = guard(build_sampler(spec.sampling, self.vocab_size), base + grammars, fault)
            decoder = OutputDecoder(
                self._detokenizers.new(), think=spec.think, reasoning=spec.reasoning, stop=spec.stop,
                lock=self.tokenizer_lock if self._detokenizers.naive else None, continued=spec.continued,
            )
            (uid,) = self._bg.insert(
                [found.rest],
                max_tokens=[spec.max_tokens],
                caches=[found.cache],
                all_tokens=[list(spec.prompt[: found.cached_tokens])],
                samplers=[sampler],
                logits_processors=[processors],
                stop_sequences=[self._eos],
            )
        except Exception as exc:
            log.exception("could not admit sequence %d", handle.id)
            self.stats.failed += 1
            self._emit(handle, Failed(500, f"could not start generation: {exc}", "generation_failed"))
            return
        grammar = grammars[0] if len(grammars) == 1 else None  # several: all stay per-row processors
        self._seqs[uid] = _Seq(handle, uid, decoder, found.cached_tokens, fault, grammar=grammar,
                               processors=processors[: len(base)] if grammar is not None else processors)
        self._uid_of[handle.id] = uid
        self.stats.prompt_tokens += len(spec.prompt)
        self.stats.cached_tokens += found.cached_tokens
        self._emit(handle, Started(found.cached_tokens))

    def _cancel(self, seq_id: int) -> None:
        uid = self._uid_of.pop(seq_id, None)
        if uid is None:
            return
        self._seqs.pop(uid, None)
        self.stats.cancelled += 1
        try:
            caches = self._bg.remove([uid], return_prompt_caches=True)
            if uid in caches:
                cache, tokens = caches[uid]
                self._store(list(tokens), cache)
        except Exception:
            log.exception("removing cancelled sequence %d", seq_id)

    def _store(self, tokens: list[int], cache: Any) -> None:
        assert self._cache is not None
        if cache is None or not tokens:
            return
        try:
            self._cache.insert(tokens, list(cache))
        except Exception:
            log.exception("storing a prefix-cache entry failed")

    def _finish(self, seq: _Seq, reason: str) -> None:
        self._seqs.pop(seq.uid, None)
        self._uid_of.pop(seq.handle.id, None)
        self.stats.served += 1
        self._emit(seq.handle, Finished(reason, len(seq.handle.spec.prompt), seq.generated, seq.cached_tokens,
                                        seq.decoder.stop_word if seq.decoder.stopped else None,
                                        seq.decoder.reasoning_tokens))

    def _fail(self, seq: _Seq, status: int, message: str, code: str) -> None:
        self._seqs.pop(seq.uid, None)
        self._uid_of.pop(seq.handle.id, None)
        self.stats.failed += 1
        self._emit(seq.handle, Failed(status, message, code))

    def _fail_all(self, status: int, message: str, code: str) -> None:
        for seq in list(self._seqs.values()):
            self._fail(seq, status, message, code)

    def _step(self) -> None:
        assert self._cache is not None
        try:
            self._arm_grammars()
            prompt_responses, gen_responses = self._bg.next()
        except Exception as exc:
            log.exception("a batch step failed; failing its %d sequences", len(self._seqs))
            self._fail_all(500, f"generation failed: {exc}", "generation_failed")
            assert self.loaded is not None
            import mlx.core as mx

            mx.random.seed(secrets.randbits(32))  # the failed step may have left the PRNG state unusable
            self._make_generator(self.loaded)
            return
        self.stats.steps += 1
        for r in prompt_responses:
            seq = self._seqs.get(r.uid)
            if seq is None or not r.end_of_prompt:
                continue
            seq.decoding = True
            self._batch_grammar(seq)
            if not self._cache.covers(seq.handle.spec.prompt):
                try:
                    extracted = self._bg.extract_cache([r.uid])
                    if r.uid in extracted:
                        cache, tokens = extracted[r.uid]
                        self._store(list(tokens), cache)
                except Exception:
                    log.exception("caching the prompt of sequence %d failed", seq.handle.id)
        decoding = 0
        for r in gen_responses:
            seq = self._seqs.get(r.uid)
            if seq is None:
                continue
            decoding += 1
            if seq.fault.error is not None:
                log.warning("sequence %d failed: %s", seq.handle.id, seq.fault.error)
                if r.finish_reason is None:
                    self._bg.remove([r.uid])
                self._fail(seq, 500, seq.fault.error, "generation_failed")
                continue
            try:
                self._on_token(seq, r)
            except Exception as exc:
                log.exception("decoding sequence %d failed", seq.handle.id)
                if r.finish_reason is None:
                    try:
                        self._bg.remove([r.uid])
                    except Exception:
                        log.exception("removing failed sequence %d", seq.handle.id)
                self._fail(seq, 500, f"decoding failed: {exc}", "generation_failed")
        self.stats.peak_batch = max(self.stats.peak_batch, decoding)
        self._read_memory()

    def _batch_grammar(self, seq: _Seq) -> None:
        """After its first token, a sequence's grammar leaves its row's processors for the batched mask pass
        (so a batch whose rows have no other processors takes mlx-lm's path without per-row slicing)."""
        if seq.grammar is None:
            return
        gen = self._bg._generation_batch
        if seq.uid in gen.uids:
            gen.logits_processors[gen.uids.index(seq.uid)] = seq.processors
            seq.batched = True

    def _arm_grammars(self) -> None:
        """Hand the batched mask pass this step's constrained rows (in the decode batch's row order) and the step's
        input tokens (the decode step runs first in the batch generator's `next`)."""
        assert self._masked is not None
        self._masked.disarm()
        gen = self._bg._generation_batch
        uids = gen.uids
        if not uids:
            return
        rows: list[tuple[GrammarProcessor, Fault] | None] = []
        for uid in uids:
            seq = self._seqs.get(uid)
            rows.append((seq.grammar, seq.fault) if seq is not None and seq.batched and seq.grammar else None)
        if any(row is not None for row in rows):
            self._masked.arm(rows, gen._next_tokens)

    def _on_token(self, seq: _Seq, r: Any) -> None:
        seq.generated += 1
        self.stats.generated_tokens += 1
        reason = r.finish_reason
        pieces = [] if reason == "stop" else seq.decoder.add_token(r.token)
        if r.finish_reason is None and seq.decoder.stopped:
            caches = self._bg.remove([r.uid], return_prompt_caches=True)
            if r.uid in caches:
                cache, tokens = caches[r.uid]
                self._store(list(tokens), cache)
        elif r.finish_reason is not None and r.prompt_cache is not None:
            self._store(list(r.all_tokens), r.prompt_cache)
        if seq.decoder.stopped:
            reason = "stop"
        if reason is not None:
            pieces += seq.decoder.finish()
        if pieces:
            self._emit(seq.handle, Delta(pieces))
        if reason is not None:
            self._finish(seq, reason)

    def _update_counts(self) -> None:
        decoding = sum(1 for s in self._seqs.values() if s.decoding)
        self.stats.running = decoding
        self.stats.prefilling = len(self._seqs) - decoding
        if self._cache is not None:
            self.stats.cache = self._cache.snapshot()

    def _read_memory(self) -> None:
        import mlx.core as mx

        self.stats.active_memory = int(mx.get_active_memory())
        self.stats.peak_memory = int(mx.get_peak_memory())
        self.stats.cache_memory = int(mx.get_cache_memory())
