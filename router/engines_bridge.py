"""Starts the engine supervisor for a config (the config holds the supervisor's specs) and turns engine events
into metrics."""

from __future__ import annotations

import logging
from pathlib import Path

from engines.supervisor.types import EngineEvent, EngineSpec, EngineSupervisor

from .config.model import Config
from .metrics import Metrics

log = logging.getLogger("agentgate.engine")


def engine_specs(config: Config) -> list[EngineSpec]:
    return [m.engine for m in config.models if m.engine is not None]


def make_supervisor(config: Config, metrics: Metrics) -> EngineSupervisor:
    from engines.supervisor.lifecycle import Supervisor

    def on_event(event: EngineEvent) -> None:
        state = {"starting": "starting", "ready": "ready", "stopped": "stopped", "crashed": "failed",
                 "evicted": "stopped", "unloaded_idle": "stopped"}.get(event.kind)
        if state:
            metrics.set_engine_state(event.name, state)
        if event.kind == "ready" and event.load_seconds is not None:
            metrics.child(metrics.engine_load, event.name).observe(event.load_seconds)
        if event.kind == "crashed":
            metrics.child(metrics.engine_restarts, event.name).inc()

    specs = engine_specs(config)
    for s in specs:
        metrics.set_engine_state(s.name, "stopped")
        ok, note = engine_availability(s)
        if note:
            (log.info if ok else log.warning)("engine %s: %s", s.name, note)
    runtime_dir = Path(config.engines.runtime_dir) if config.engines.runtime_dir else None
    return Supervisor(specs, max_loaded=config.engines.max_loaded, memory_budget_gb=config.engines.memory_budget_gb,
                      runtime_dir=runtime_dir, state_dir=engines_state_dir(config), on_event=on_event,
                      check=start_refusal)


def engines_state_dir(config: Config) -> Path | None:
    """Where MLX engines keep their prefix cache across unloads and restarts: `engines.state_dir`, else
    `engines/` in the router's state folder (AGENTGATE_STATE_DIR, XDG_STATE_HOME); `state_dir: ""` turns it off."""
    if config.engines.state_dir is not None:
        return Path(config.engines.state_dir).expanduser() if config.engines.state_dir else None
    from router.store import default_path

    return default_path().parent / "engines"


def start_refusal(entry: EngineSpec) -> str | None:
    """Why the supervisor should not even try to start `entry` (what /v1/models says of it), else None: checked
    before a start stops any loaded engine to make room for one that cannot load."""
    ok, note = engine_availability(entry)
    return None if ok else note


def engine_availability(entry: EngineSpec) -> tuple[bool, str | None]:
    """Whether an engine entry can start here, and a note for /v1/models and the start-up log."""
    model = entry.model or ""
    if entry.kind != "mlx" or model.startswith("tiny:") or Path(model).expanduser().exists():
        return True, None
    if "/" not in model or model.startswith(("/", "~", ".")) or model.count("/") > 1:  # a path, not a repo id
        return False, f"model path {model!r} does not exist"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with mlx-lm
        return True, "downloads from the hub on first use"
    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError as exc:  # the hub's HFValidationError: neither a path that exists nor a repo id
        return False, f"model {model!r} is neither a path that exists nor a hub repo id ({exc})"
    if isinstance(cached, str):
        return True, None
    import os

    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False, f"{model} is not in the local hub cache and HF_HUB_OFFLINE is set"
    return True, f"{model} downloads from the hub on first use"
