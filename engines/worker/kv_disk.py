"""Prefix-cache entries kept on disk, so that an engine unloaded (idle ttl, LRU swap) or restarted resumes a
conversation from its KV cache instead of prefilling it again.

Layout: `<root>/<model id>/<sha256 of the tokens>.safetensors`, one file per entry, bounded in bytes and count
(least recently used files go first). The model id hashes the model folder's identity (resolved path, config.json,
weight file names, sizes and modification times) so that a changed model never reads another model's cache. Each
file is a plain safetensors file: per layer `k.<i>` and `v.<i>` (shape 1 x kv-heads x tokens x head-dim) and, in
its metadata, the token sequence the cache holds. Only caches made of plain `KVCache` layers are stored.

Threads: every MLX call (evaluating and exposing the cache buffers, `mx.load`) happens on the caller's thread, the
engine's one MLX thread. `save()` hands zero-copy numpy views of already evaluated buffers to a writer thread,
which only copies bytes into a temporary file and renames it into place; readers never see a partial file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("agentgate.engine")

FORMAT = "agentgate-kv/1"
SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 8 << 20  # 32k tokens of metadata fit well within this
SUPERSEDE_TAIL = 256  # a longer new entry replaces one whose tokens differ from it only in their last this many
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def model_identity(path: str | os.PathLike[str]) -> str:
    """A short hex id for a model folder; changes when its config or weight files change."""
    root = Path(path).expanduser()
    h = hashlib.sha256(FORMAT.encode())
    try:
        h.update(str(root.resolve()).encode())
        cfg = root / "config.json"
        if cfg.is_file():
            h.update(cfg.read_bytes())
        for f in sorted(root.iterdir()):
            if f.suffix in (".safetensors", ".npz", ".gguf") and f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    except OSError:
        h.update(str(path).encode())
    return h.hexdigest()[:24]


@dataclass
class DiskMatch:
    key: str  # file stem
    length: int  # prompt tokens the entry can serve


@dataclass
class _DiskEntry:
    key: str
    tokens: np.ndarray  # int64
    nbytes: int


@dataclass
class _Job:
    key: str
    tokens: list[int]
    arrays: list[tuple[str, str, np.ndarray]]  # (name, safetensors dtype, buffer view)
    keep: list[Any]  # the MLX arrays the views point into, alive until written


@dataclass
class DiskStats:
    loads: int = 0
    load_failures: int = 0
    writes: int = 0
    write_failures: int = 0
    evictions: int = 0
    skipped: int = 0


def _key(tokens: list[int] | tuple[int, ...]) -> str:
    return hashlib.sha256(np.asarray(tokens, dtype=np.int64).tobytes()).hexdigest()[:32]


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("truncated")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or n > MAX_HEADER_BYTES:
            raise ValueError("bad header length")
        header = json.loads(f.read(n))
    if not isinstance(header, dict):
        raise ValueError("bad header")
    return header, 8 + n


def _plain_kv(cache: list[Any]) -> bool:
    from mlx_lm.models.cache import KVCache

    return bool(cache) and all(type(c) is KVCache and c.keys is not None for c in cache)


class DiskKV:
    """The on-disk side of the prefix cache for one model. Thread-safe index; one writer thread."""

    def __init__(self, root: str | os.PathLike[str], model_id: str, budget_bytes: int, *,
                 max_entries: int = 64) -> None:
        self.dir = Path(root).expanduser() / model_id
        self.model_id = model_id
        self.budget_bytes = max(0, int(budget_bytes))
        self.max_entries = max(1, max_entries)
        self.stats = DiskStats()
        self._lock = threading.Lock()
        self._entries: dict[str, _DiskEntry] = {}  # insertion order = least recently used first
        self._nbytes = 0
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._queued: set[str] = set()

    # -- index ------------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the folder and index what earlier runs left there (headers only)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        found: list[tuple[float, _DiskEntry]] = []
        for path in self.dir.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            if path.suffix != SUFFIX:
                continue
            try:
                header, start = _read_header(path)
                meta = header.get("__metadata__") or {}
                if meta.get("format") != FORMAT or meta.get("model") != self.model_id:
                    raise ValueError("another format or model")
                tokens = np.asarray(json.loads(meta["tokens"]), dtype=np.int64)
                size = path.stat().st_size
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                if tokens.ndim != 1 or not len(tokens) or path.stem != _key(tokens.tolist()) or size != start + end:
                    raise ValueError("inconsistent entry")
                found.append((path.stat().st_mtime, _DiskEntry(path.stem, tokens, size)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("dropping unreadable KV cache file %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
        with self._lock:
            for _, entry in sorted(found, key=lambda t: t[0]):
                self._entries[entry.key] = entry
                self._nbytes += entry.nbytes
            self._evict_locked()
        if found:
            log.info("KV cache on disk: %d entries, %.1f MiB", len(self._entries), self._nbytes / 2**20)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def find(self, tokens: list[int]) -> DiskMatch | None:
        """The entry serving the longest prefix of `tokens` (always leaving at least the last token to feed)."""
        if len(tokens) < 2 or not self._entries:
            return None
        want = np.asarray(tokens, dtype=np.int64)
        best: DiskMatch | None = None
        with self._lock:
            entries = list(self._entries.values())
        for e in entries:
            n = min(len(e.tokens), len(want))
            same = e.tokens[:n] == want[:n]
            common = n if bool(same.all()) else int(np.argmin(same))
            length = min(common, len(want) - 1)
            if length > 0 and (best is None or length > best.length):
                best = DiskMatch(e.key, length)
        return best

    def covers(self, tokens: list[int]) -> bool:
        if not self._entries:
            return False
        if _key(tokens) in self._entries:
            return True
        want = np.asarray(tokens, dtype=np.int64)
        with self._lock:
            entries = list(self._entries.values())
        return any(len(e.tokens) >= len(want) and bool((e.tokens[: len(want)] == want).all()) for e in entries)

    # -- load (MLX thread) -------------------------------------------------------------------------------------
    def load(self, key: str) -> tuple[list[int], list[Any]] | None:
        """The tokens and fresh per-layer KV caches of an entry, or None (an unreadable file is removed)."""
        import mlx.core as mx
        from mlx_lm.models.cache import KVCache

        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        path = self.dir / f"{key}{SUFFIX}"
        try:
            arrays = mx.load(str(path))
            assert isinstance(arrays, dict)
            n = len(entry.tokens)
            layers = len(arrays) // 2
            cache = []
            for i in range(layers):
                k, v = arrays[f"k.{i}"], arrays[f"v.{i}"]
                if k.ndim != 4 or v.ndim != 4 or k.shape[2] != n or v.shape[2] != n:
                    raise ValueError(f"layer {i} does not hold {n} tokens")
                c = KVCache()
                c.keys, c.values, c.offset = k, v, n
                cache.append(c)
            if not cache or len(arrays) != 2 * layers:
                raise ValueError("unexpected arrays")
            mx.eval([(c.keys, c.values) for c in cache])
        except Exception as exc:  # a damaged or foreign file: forget it
            log.warning("dropping KV cache file %s: %s", path.name, exc)
            self.stats.load_failures += 1
            self._drop(key)
            return None
        with self._lock:
            if key in self._entries:
                self._entries[key] = self._entries.pop(key)  # most recently used
        try:
            os.utime(path)
        except OSError:
            pass
        self.stats.loads += 1
        return entry.tokens.tolist(), cache

    # -- save (MLX thread) -> writer thread ----------------------------------------------------------------------
    def save(self, tokens: list[int], cache: list[Any]) -> bool:
        """Queue `cache` (holding exactly `tokens`) for writing; cheap on the calling thread."""
        import mlx.core as mx

        if self.budget_bytes <= 0 or len(tokens) < 2 or not _plain_kv(cache):
            self.stats.skipped += 1
            return False
        if any(int(c.offset) != len(tokens) for c in cache):
            self.stats.skipped += 1
            return False
        key = _key(tokens)
        if key in self._queued or self.covers(tokens):
            return False
        n = len(tokens)
        views: list[Any] = []
        names: list[tuple[str, str]] = []
        for i, c in enumerate(cache):
            for name, arr in ((f"k.{i}", c.keys), (f"v.{i}", c.values)):
                dt = _DTYPES.get(str(arr.dtype).removeprefix("mlx.core."))
                if dt is None:
                    self.stats.skipped += 1
                    return False
                part = arr[..., :n, :]
                if dt == "BF16":  # numpy has no bfloat16: expose the same bytes as uint16
                    part = part.view(mx.uint16)
                views.append(part)
                names.append((name, dt))
        if sum(int(v.nbytes) for v in views) > self.budget_bytes:
            self.stats.skipped += 1
            return False
        mx.eval(views)
        arrays = [(name, dt, np.asarray(memoryview(v))) for (name, dt), v in zip(names, views, strict=True)]
        self._queued.add(key)
        self._ensure_writer()
        self._jobs.put(_Job(key, list(tokens), arrays, views))
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queued writes are done (or `timeout`); returns whether they all were."""
        deadline = time.monotonic() + timeout
        while self._queued and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queued

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=max(0.1, timeout))
            self._writer = None

    def _ensure_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="agentgate-kv-writer", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._write(job)
                self.stats.writes += 1
            except Exception as exc:
                self.stats.write_failures += 1
                log.warning("writing a KV cache file failed: %s", exc)
            finally:
                job.arrays.clear()
                job.keep.clear()
                self._queued.discard(job.key)

    def _write(self, job: _Job) -> None:
        header: dict[str, Any] = {"__metadata__": {"format": FORMAT, "model": self.model_id,
                                                   "tokens": json.dumps(job.tokens, separators=(",", ":"))}}
        offset = 0
        for name, dt, arr in job.arrays:
            header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
            offset += arr.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        path = self.dir / f"{job.key}{SUFFIX}"
        tmp = self.dir / f"{job.key}.{os.getpid()}.tmp"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with tmp.open("wb") as f:
                f.write(struct.pack("<Q", len(raw)))
                f.write(raw)
                for _, _, arr in job.arrays:
                    f.write(np.ascontiguousarray(arr).data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        entry = _DiskEntry(job.key, np.asarray(job.tokens, dtype=np.int64), 8 + len(raw) + offset)
        with self._lock:
            old = self._entries.pop(job.key, None)
            self._nbytes -= old.nbytes if old else 0
            # entries the new one supersedes: its strict prefixes, and shorter entries it shares all but a short
            # tail with (an agent's previous turn: the re-rendered reply differs from the generated one), three
            # quarters of them at least (a short entry shares "all but 256" with anything: another conversation
            # that only begins with the same system prompt is not a previous turn)
            n = len(entry.tokens)
            for other in [e for e in self._entries.values() if len(e.tokens) < n]:
                m = len(other.tokens)
                same = entry.tokens[:m] == other.tokens
                common = m if bool(same.all()) else int(np.argmin(same))
                if common >= m - SUPERSEDE_TAIL and 4 * common >= 3 * m:
                    self._remove_locked(other.key)
            self._entries[job.key] = entry
            self._nbytes += entry.nbytes
            self._evict_locked()

    # -- eviction ---------------------------------------------------------------------------------------------
    def _drop(self, key: str) -> None:
        with self._lock:
            self._remove_locked(key)

    def _remove_locked(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._nbytes -= entry.nbytes
        (self.dir / f"{key}{SUFFIX}").unlink(missing_ok=True)

    def _evict_locked(self) -> None:
        while self._entries and (self._nbytes > self.budget_bytes or len(self._entries) > self.max_entries):
            key = next(iter(self._entries))
            self._remove_locked(key)
            self.stats.evictions += 1

    def snapshot(self) -> dict[str, int]:
        s = self.stats
        return {"entries": len(self._entries), "bytes": self._nbytes, "budget_bytes": self.budget_bytes,
                "loads": s.loads, "load_failures": s.load_failures, "writes": s.writes,
                "write_failures": s.write_failures, "evictions": s.evictions}
