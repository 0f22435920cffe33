"""Public data types of the engine lifecycle: specs, endpoints, states, status, events, the unavailable error,
and `EngineSupervisor`, the surface of the supervisor that the router holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

KINDS = ("mlx", "command")


class EngineState(str, Enum):
    """Where one engine is in its lifecycle. A `str`, so it compares equal to (and serialises as) its value."""

    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


STATES = tuple(s.value for s in EngineState)
EVENT_KINDS = ("starting", "ready", "stopped", "crashed", "evicted", "unloaded_idle")


@dataclass(frozen=True)
class EngineSpec:
    """How to run one served model: our MLX worker (`kind="mlx"`) or an external server (`kind="command"`)."""

    name: str
    kind: str
    model: str | None = None
    command: Sequence[str] | str | None = None
    health_path: str = "/health"
    ttl: float | None = None
    start_timeout: float = 120.0
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    memory_gb: float | None = None
    tool_format: str | None = None
    preload: bool = False  # started with the router (the supervisor itself starts engines on first use only)
    max_body_containers: int | None = None  # an MLX worker's --max-body-containers unless `args` set it (None: its
    # default): the router's server.max_body_containers, so that a body the router lets through is not refused there
    max_body_bytes: int | None = None  # an MLX worker's --max-body-mb (in bytes) unless `args` set it, likewise

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("engine name must not be empty")
        if self.kind not in KINDS:
            raise ValueError(f"engine {self.name!r}: kind must be one of {', '.join(KINDS)}, "
                             f"not {self.kind!r}")
        if self.kind == "mlx" and not self.model:
            raise ValueError(f"engine {self.name!r}: kind 'mlx' needs a model (model: a path, a hub id or tiny:demo)")
        if self.kind == "command" and not self.command:
            raise ValueError(f"engine {self.name!r}: kind 'command' needs a command")
        if self.start_timeout <= 0:
            raise ValueError(f"engine {self.name!r}: start_timeout must be positive")
        if self.ttl is not None and self.ttl < 0:
            raise ValueError(f"engine {self.name!r}: ttl must not be negative")
        if self.memory_gb is not None and self.memory_gb < 0:
            raise ValueError(f"engine {self.name!r}: memory_gb must not be negative")
        # Normalise containers so that specs built from lists, tuples or pair lists compare equal.
        if self.command is not None and not isinstance(self.command, str):
            object.__setattr__(self, "command", tuple(str(a) for a in self.command))
        object.__setattr__(self, "args", tuple(str(a) for a in self.args))
        object.__setattr__(self, "env", {str(k): str(v) for k, v in dict(self.env).items()})
        if not self.health_path.startswith("/"):
            object.__setattr__(self, "health_path", "/" + self.health_path)

    def __hash__(self) -> int:
        return hash((self.name, self.launch_key(), self.ttl, self.start_timeout, self.memory_gb))

    def launch_key(self) -> tuple[Any, ...]:
        """The fields that shape the running process; a change in any of them needs a restart."""
        return (self.kind, self.model, self.command, self.health_path, tuple(sorted(self.env.items())),
                self.args, self.tool_format, self.max_body_containers, self.max_body_bytes)


@dataclass
class Endpoint:
    """Where a ready engine answers: a base URL, over a Unix socket when `unix_socket` is set."""

    base_url: str
    unix_socket: str | None = None


@dataclass
class EngineStatus:
    state: EngineState
    pid: int | None
    in_flight: int
    last_used: float | None  # Unix time of the last lease acquire or release
    load_seconds: float | None  # spawn-to-ready time of the latest successful start
    restarts: int  # starts that followed a crash or a failed start
    last_error: str | None
    starting_since: float | None = None  # Unix time the current start began; None unless starting


@dataclass(frozen=True)
class EngineEvent:
    name: str
    kind: str  # one of EVENT_KINDS
    load_seconds: float | None = None
    detail: str = ""


class EngineUnavailable(Exception):
    """The engine could not be made ready: unknown name, failed start, start timeout, no room, shutdown."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"engine {name!r} is unavailable: {reason}")
        self.name = name
        self.reason = reason


class EngineSupervisor(Protocol):
    """What the router uses of `lifecycle.Supervisor` (and what a stand-in for it provides)."""

    @property
    def closing(self) -> bool: ...

    def lease(self, name: str) -> AbstractAsyncContextManager[Endpoint]: ...

    def states(self) -> dict[str, EngineStatus]: ...

    def endpoint(self, name: str) -> Endpoint | None: ...

    def crashed(self, name: str) -> bool: ...

    async def crashed_under(self, name: str, endpoint: Endpoint, timeout: float) -> bool: ...

    def specs(self) -> dict[str, EngineSpec]: ...

    async def stop(self, name: str, *, drain_timeout: float = 30.0) -> None: ...

    async def update(self, specs: Iterable[EngineSpec], *, drain_timeout: float = 30.0) -> None: ...

    async def close(self, drain_timeout: float = 30.0) -> None: ...
