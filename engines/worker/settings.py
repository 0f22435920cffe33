"""The engine worker's settings: one dataclass, whose defaults the command line (cli.py) takes from here. Standard
library only, so the command line is built without importing MLX."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class WorkerSettings:
    model: str
    name: str | None = None
    max_batch: int = 32
    cache_bytes: int = 2 << 30
    tool_format: str = "auto"
    max_context: int | None = None
    prefill_step_size: int = 2048
    cpu_threads: int | None = None  # None: one per usable core (up to 8)
    kv_dir: str | None = None  # prefix-cache entries persist here (None: memory only)
    kv_disk_bytes: int = 4 << 30
    constrain: bool = True  # grammar-constrained tool calls and JSON replies (`--no-constrain` turns it off)

    @property
    def served_name(self) -> str:
        if self.name:
            return self.name
        if self.model.startswith("tiny:"):
            return self.model
        return Path(self.model.rstrip("/")).name or self.model
