"""The BLAS the engine binds for MLX's CPU matmul (engines/worker/blas.py), in real processes: OpenBLAS bound and
proven from libmlx.so's import slot, `bundled` keeping the wheel's reference BLAS, failures falling back with one
warning, the renamed copy cached and rebuilt when damaged, and a supervised worker reporting what it uses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engines.supervisor.lifecycle import EngineSpec, Supervisor
from engines.worker import blas

ROOT = Path(__file__).resolve().parents[2]
HAVE_OPENBLAS = sys.platform == "linux" and blas.find_openblas_or_none() is not None
pytestmark = pytest.mark.skipif(not HAVE_OPENBLAS, reason="Linux with the scipy-openblas32 package only")

PROBE = """
import json, sys
from pathlib import Path
from engines.worker import blas
info = blas.bind(sys.argv[1], threads=1, cache_dir=Path(sys.argv[2]))
info = blas.verify()
print(json.dumps({"info": info.as_json(), "error": blas.mlx_matmul_error()}))
"""
WARNING = "blas: OpenBLAS is not in use"


def probe(mode: str, cache: Path, *, before: str = "", path: list[Path] | None = None) -> tuple[dict[str, Any], str]:
    """Bind in a fresh interpreter, verify, and return (its report, its stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*(path or []), ROOT])}
    env.pop("OPENBLAS_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", before + PROBE, mode, str(cache)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def is_reference(library: str) -> bool:
    return "mlx_cpu.libs" in library and Path(library).name.startswith("libblas")


def test_openblas_is_bound_and_multiplies_like_numpy(tmp_path: Path) -> None:
    report, err = probe("auto", tmp_path)
    info = report["info"]
    assert info["blas"] == "openblas" and info["verified"] is True and info["threads"] == 1, err
    assert Path(info["library"]).parent == tmp_path and Path(info["library"]).name.startswith("libagentgate_openblas")
    assert report["error"] < 1e-5
    assert WARNING not in err


def test_bundled_keeps_the_reference_blas(tmp_path: Path) -> None:
    report, _ = probe("bundled", tmp_path)
    info = report["info"]
    assert info["blas"] == "bundled" and info["verified"] is True and is_reference(info["library"]), info
    assert report["error"] < 1e-5
    assert list(tmp_path.iterdir()) == []  # nothing built


def fake_package(root: Path, library: bytes | None) -> Path:
    """A `scipy_openblas32` that shadows the real one: with a broken library file, or none at all."""
    pkg = root / "scipy_openblas32"
    (pkg / "lib").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('the bind must not import the package')\n")
    if library is not None:
        (pkg / "lib" / "libscipy_openblas.so").write_bytes(library)
    return root


@pytest.mark.parametrize("library", [b"\x7fELF not really a library" * 100, None], ids=["broken", "missing"])
def test_a_broken_or_missing_library_falls_back_with_one_warning(tmp_path: Path, library: bytes | None) -> None:
    shadow = fake_package(tmp_path / "site", library)
    report, err = probe("auto", tmp_path / "cache", path=[shadow])
    info = report["info"]
    assert info["blas"] == "bundled" and info["verified"] is True and is_reference(info["library"]), info
    assert err.count(WARNING) == 1, err
    assert report["error"] < 1e-5


def test_mlx_imported_first_is_caught_by_the_check(tmp_path: Path) -> None:
    report, err = probe("openblas", tmp_path, before="import mlx.core\n")
    info = report["info"]
    assert info["blas"] == "bundled" and is_reference(info["library"]), info  # the slot says so, not the intent
    assert "mlx was imported before the BLAS was bound" in err


def test_the_copy_is_reused_and_a_damaged_one_rebuilt(tmp_path: Path) -> None:
    source, patchelf = blas.find_openblas(), blas.find_patchelf()
    first = blas.renamed_copy(source, tmp_path, patchelf)
    built, digest = first.stat(), blas._file_digest(first)
    again = blas.renamed_copy(source, tmp_path, patchelf)
    assert again == first and (again.stat().st_ino, again.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)

    with open(first, "r+b") as f:  # partial: cut in half
        f.truncate(built.st_size // 2)
    assert blas.renamed_copy(source, tmp_path, patchelf) == first and first.stat().st_size == built.st_size
    assert blas._file_digest(first) == digest
    with open(first, "r+b") as f:  # corrupt: same size, other bytes
        f.seek(built.st_size // 3)
        f.write(b"\0" * 4096)
    damaged = first.stat().st_ino  # still linked while the rebuild writes its temporary file, so never reused by it
    repaired = blas.renamed_copy(source, tmp_path, patchelf)
    assert repaired.stat().st_ino != damaged and blas._file_digest(repaired) == digest
    assert blas.import_slots(repaired, "cblas_sgemm") == []  # it defines the symbol, imports nothing of it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", first.name, first.name + ".sha256"]


def test_concurrent_builds_make_one_intact_copy(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from engines.worker import blas; "
            "print(blas.renamed_copy(blas.find_openblas(), Path(sys.argv[1]), blas.find_patchelf()))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(3)]
    paths = {p.communicate(timeout=180)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(paths) == 1
    assert blas.renamed_copy(blas.find_openblas(), tmp_path, blas.find_patchelf()) == Path(paths.pop())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]


def test_the_entry_points_import_no_mlx_before_binding() -> None:
    code = ("import sys, router.cli, engines.worker.cli, engines.worker.blas; router.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'numpy')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=True)
    assert done.stdout.strip() == "[]"
    assert (ROOT / "engines" / "__main__.py").read_text().count("import") == 1  # only engines.worker.cli


async def _get(socket_path: str, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session, \
            session.get(f"http://localhost{path}") as resp:
        return dict(await resp.json())


async def _chat(socket_path: str) -> dict[str, Any]:
    body = {"model": "m", "max_tokens": 40, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session, \
            session.post("http://localhost/v1/chat/completions", json=body) as resp:
        return dict(await resp.json())


async def test_supervised_workers_report_their_blas_and_decode_the_same(tmp_path: Path) -> None:
    specs = [EngineSpec(name=name, kind="mlx", model="tiny:demo", start_timeout=180, args=args)
             for name, args in (("fast", ()), ("reference", ("--blas", "bundled")))]
    sup = Supervisor(specs, runtime_dir=tmp_path / "run", max_loaded=1)
    seen: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {}
    try:
        for name in ("fast", "reference"):
            async with sup.lease(name) as ep:
                assert ep.unix_socket is not None
                stats, health = await _get(ep.unix_socket, "/stats"), await _get(ep.unix_socket, "/health")
                reply = await _chat(ep.unix_socket)
                seen[name] = (stats["blas"], health, reply["choices"][0]["message"]["content"])
    finally:
        await asyncio.wait_for(sup.close(drain_timeout=5), 60)
    fast, reference = seen["fast"], seen["reference"]
    assert fast[0]["blas"] == "openblas" and fast[0]["verified"] is True and fast[1]["blas"] == "openblas"
    assert reference[0]["blas"] == "bundled" and is_reference(reference[0]["library"])
    assert reference[1]["blas"] == "bundled"
    assert fast[2] == reference[2] and fast[2]  # the scripted model's greedy text, token for token


def test_check_says_what_each_engine_would_bind(tmp_path: Path) -> None:
    from router.commands.check import blas_mode

    assert blas_mode(("--blas", "bundled"), {}) == "bundled" and blas_mode(("--blas=openblas",), {}) == "openblas"
    assert blas_mode((), {"AGENTGATE_BLAS": "bundled"}) == "bundled"
    assert blas_mode((), {"AGENTGATE_BLAS": "x"}) == "auto"
    planned = blas.plan("auto", {"OPENBLAS_NUM_THREADS": "2"})
    assert (planned.blas, planned.threads, planned.library) == ("openblas", 2, str(blas.find_openblas()))
    assert blas.plan("auto", {"OPENBLAS_NUM_THREADS": "\u00b2"}).threads == blas.DEFAULT_THREADS  # not int('²')
    assert blas.plan("bundled", {}).blas == "bundled" and str(blas.plan("fast", {}).reason).startswith("unknown mode")
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  - {name: a, engine: mlx, model: 'tiny:demo'}\n"
                      "  - {name: b, engine: mlx, model: 'tiny:demo', engine_args: ['--blas', 'bundled']}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("AGENTGATE_BLAS", "OPENBLAS_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-m", "router", "check", "--config", str(config)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("local engines (MLX CPU matmul):\n", 1)[1].splitlines()
    assert lines[0].split() == ["a", "blas", "auto", "->", "openblas,", "1", "thread(s)", f"({blas.find_openblas()})"]
    assert lines[1].split() == ["b", "blas", "bundled", "->", "bundled"]
