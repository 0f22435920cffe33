"""Starts the engine supervisor for a config (the config holds the supervisor's specs) and turns engine events
into metrics."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from engines.supervisor.types import EngineEvent, EngineSpec, EngineSupervisor
from engines.worker.modeldir import folder_problem
from engines.worker.tiny import is_tiny_spec, tiny_cache_problem, tiny_spec_problem

from .config.model import Config
from .metrics import Metrics

log = logging.getLogger("agentgate.engine")


def engine_specs(config: Config) -> list[EngineSpec]:
    return [m.engine for m in config.models if m.engine is not None]


def make_supervisor(config: Config, metrics: Metrics) -> EngineSupervisor:
    from engines.supervisor.lifecycle import Supervisor

    def on_event(event: EngineEvent) -> None:
        if event.kind == "ready" and event.load_seconds is not None:
            metrics.child(metrics.engine_load, event.name).observe(event.load_seconds)
        if event.kind == "crashed":
            metrics.child(metrics.engine_restarts, event.name).inc()

    specs = engine_specs(config)
    for s in specs:
        metrics.track_engine(s.name)
        ok, note = engine_availability(s)
        if note:
            (log.info if ok else log.warning)("engine %s: %s", s.name, note)
    runtime_dir = Path(config.engines.runtime_dir) if config.engines.runtime_dir else None
    return Supervisor(specs, max_loaded=config.engines.max_loaded, memory_budget_gb=config.engines.memory_budget_gb,
                      runtime_dir=runtime_dir, state_dir=engines_state_dir(config), on_event=on_event,
                      check=start_refusal)


def engine_states(supervisor: EngineSupervisor | None) -> dict[str, str]:
    """Each engine's state as the supervisor holds it: what /ready and /running report, and the engine state metric
    (no engine: none)."""
    if supervisor is None:
        return {}
    return {name: str(st.state) for name, st in supervisor.states().items()}


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
    """Whether an engine entry can start here, and a note for /v1/models and the start-up log. Judged in the
    environment the engine is launched with (the router's, with the entry's `env` over it, as `plan_launch` does):
    an entry's own HF_HOME or HF_HUB_OFFLINE decides where its model is looked for and whether it may download."""
    model = entry.model or ""
    if entry.kind == "mlx" and is_tiny_spec(model):
        # (built in the cache folder of the worker's environment: one it cannot create is refused before a start)
        problem = tiny_spec_problem(model) or tiny_cache_problem(model, {**os.environ, **entry.env})
        return problem is None, problem
    if entry.kind != "mlx":
        return True, None
    path = Path(model).expanduser()
    if path.exists():  # as the worker judges it before listening: one it would refuse is not started
        problem = folder_problem(path, model)
        return problem is None, problem
    if "/" not in model or model.startswith(("/", "~", ".")) or model.count("/") > 1:  # a path, not a repo id
        return False, f"model path {model!r} does not exist"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with mlx-lm
        return True, "downloads from the hub on first use"
    env = {**os.environ, **entry.env}
    try:
        cached = try_to_load_from_cache(model, "config.json", cache_dir=hub_cache(env))
    except ValueError as exc:  # the hub's HFValidationError: neither a path that exists nor a repo id
        return False, f"model {model!r} is neither a path that exists nor a hub repo id ({exc})"
    if isinstance(cached, str):
        return True, None
    if _true(env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE")):
        return False, f"{model} is not in the local hub cache and HF_HUB_OFFLINE is set"
    return True, f"{model} downloads from the hub on first use"


def hub_cache(env: Mapping[str, str]) -> str:
    """The hub cache folder a process with environment `env` uses: huggingface_hub's rules (HF_HUB_CACHE, else
    HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub), applied to `env` rather than
    to the router's own environment, which is all the hub library reads (once, when it is imported)."""
    home = env.get("HF_HOME", os.path.join(env.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                                           "huggingface"))
    home = os.path.expandvars(os.path.expanduser(home))
    cache = env.get("HF_HUB_CACHE", env.get("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub")))
    return os.path.expandvars(os.path.expanduser(cache))


def _true(value: str | None) -> bool:
    """An environment flag as huggingface_hub reads one."""
    return (value or "").upper() in ("1", "ON", "YES", "TRUE")
