"""The engine worker's settings: one dataclass, whose defaults the command line (cli.py) takes from here. Standard
library only, so the command line is built without importing MLX."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BLAS_MODES = ("auto", "openblas", "bundled")


def default_blas(env: Mapping[str, str]) -> str:
    """`--blas` when the command line does not say: $AGENTGATE_BLAS if it names a mode, else the settings' default."""
    value = env.get("AGENTGATE_BLAS", "")
    return value if value in BLAS_MODES else WorkerSettings.blas


@dataclass
class WorkerSettings:
    model: str
    name: str | None = None
    max_batch: int = 32
    cache_bytes: int = 2 << 30
    tool_format: str = "auto"
    max_context: int | None = None
    prefill_step_size: int = 2048
    cpu_threads: int | None = None  # None: usable cores // BLAS threads (up to 8)
    kv_dir: str | None = None  # prefix-cache entries persist here (None: memory only)
    kv_disk_bytes: int = 4 << 30
    constrain: bool = True  # grammar-constrained tool calls and JSON replies (`--no-constrain` turns it off)
    max_body_containers: int = 500_000  # `{` and `[` in a body over 1 MiB (parsing holds the event loop): 413 past it
    max_body_bytes: int = 64 << 20  # a larger request body is a 413 (`--max-body-mb`)
    blas: str = "auto"  # MLX's CPU BLAS on Linux: auto/openblas bind OpenBLAS (engines/worker/blas.py), bundled keeps
    # the wheel's reference BLAS

    @property
    def served_name(self) -> str:
        if self.name:
            return self.name
        if self.model.startswith("tiny:"):
            return self.model
        return Path(self.model.rstrip("/")).name or self.model


def cache_base(env: Mapping[str, str] | None = None) -> Path:
    """Where the engine keeps files it can rebuild (tiny models, the renamed BLAS): $AGENTGATE_CACHE, else
    $XDG_CACHE_HOME/agentgate, else ~/.cache/agentgate, read from `env` (default: this process's environment)."""
    env = os.environ if env is None else env
    base = env.get("AGENTGATE_CACHE")
    if base:
        return Path(base)
    home = env.get("HOME") or str(Path.home())
    return Path(env.get("XDG_CACHE_HOME") or Path(home) / ".cache") / "agentgate"
