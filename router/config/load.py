"""Read, expand, validate and resolve a config file into `model.Config`.

Errors name the file, the path inside the document and what was expected.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .model import (
    CaptureConfig,
    ClientKey,
    Config,
    EngineEntry,
    EnginesConfig,
    ModelConfig,
    Policy,
    ProviderConfig,
    RepairPolicy,
    ServerConfig,
    Target,
    Timeouts,
)

_ENGINE_VARS = frozenset({"PORT", "MODEL"})
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config that cannot be used; the message says where and why."""


@cache
def schema() -> dict[str, Any]:
    text = resources.files("router.config").joinpath("schema.json").read_text()
    return dict(json.loads(text))


def _where(path: list[str | int] | Any) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return parts.lstrip(".") or "<document root>"


def _expand(node: Any, env: Mapping[str, str], path: tuple[str | int, ...], missing: dict[tuple, list[str]]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; record unset variables by path."""
    if isinstance(node, str):
        if "${" not in node:
            return node
        unset: list[str] = []

        in_command = "command" in path

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if in_command and name in _ENGINE_VARS:  # substituted by the supervisor when it starts the command
                return m.group(0)
            value = env.get(name)
            if value:
                return value
            if default is not None:
                return default
            unset.append(name)
            return ""

        out = _ENV.sub(sub, node)
        if unset:
            missing[path] = unset
        return out
    if isinstance(node, dict):
        return {k: _expand(v, env, (*path, str(k)), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, (*path, i), missing) for i, v in enumerate(node)]
    return node


def _missing_under(missing: dict[tuple, list[str]], prefix: tuple) -> list[str]:
    names: list[str] = []
    for path, vars_ in missing.items():
        if path[: len(prefix)] == prefix:
            names.extend(v for v in vars_ if v not in names)
    return names


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    return parse_config(text, source=str(p), env=env)


def parse_config(text: str, *, source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}:{where}: invalid YAML: {problem}") from None
    if doc is None:
        doc = {}
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        lines = [f"{source}: {_where(e.absolute_path)}: {_describe(e)}" for e in errors[:10]]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    missing: dict[tuple, list[str]] = {}
    doc = _expand(doc, os.environ if env is None else env, (), missing)
    return _build(doc, source, missing)


def _describe(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return f"unknown key ({err.message.split('(')[-1].rstrip(')')}); allowed: " + ", ".join(
            sorted(err.schema.get("properties", {}))
        )
    if err.validator == "enum":
        return f"expected one of {', '.join(map(repr, err.validator_value))}, got {err.instance!r}"
    if err.validator == "type":
        return f"expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if err.validator == "oneOf" and err.context:
        return "; or ".join(sorted({c.message for c in err.context}))
    return err.message


def _policy(raw: Mapping[str, Any], base: Policy) -> Policy:
    t = raw.get("timeouts", {})
    b = raw.get("backoff", {})
    br = raw.get("breaker", {})
    return Policy(
        timeouts=Timeouts(
            connect=t.get("connect", base.timeouts.connect),
            first_byte=t.get("first_byte", base.timeouts.first_byte),
            idle=t.get("idle", base.timeouts.idle),
            total=t.get("total", base.timeouts.total),
        ),
        retries=raw.get("retries", base.retries),
        backoff_base=b.get("base", base.backoff_base),
        backoff_max=b.get("max", base.backoff_max),
        max_retry_after=b.get("max_retry_after", base.max_retry_after),
        breaker_failures=br.get("failures", base.breaker_failures),
        breaker_cooldown=br.get("cooldown", base.breaker_cooldown),
        max_concurrency=raw.get("max_concurrency", base.max_concurrency),
        max_queue=raw.get("max_queue", base.max_queue),
        queue_timeout=raw.get("queue_timeout", base.queue_timeout),
    )


def _fail(source: str, path: str, message: str) -> ConfigError:
    return ConfigError(f"invalid config:\n  {source}: {path}: {message}")


def _build(doc: dict[str, Any], source: str, missing: dict[tuple, list[str]]) -> Config:
    srv = doc.get("server", {})
    keys: list[ClientKey] = []
    for i, entry in enumerate(srv.get("api_keys", [])):
        item = {"key": entry} if isinstance(entry, str) else entry
        if not item["key"]:  # an unset ${VAR}: that key does not exist
            continue
        models = item.get("models")
        key = ClientKey(name=item.get("name", f"key{i}"), key=item["key"],
                        models=frozenset(models) if models is not None else None)
        for other in keys:
            if other.name == key.name:
                raise _fail(source, f"server.api_keys[{i}].name", f"{key.name!r} names another key already; "
                            "every key needs its own name")
            if other.key == key.key:
                raise _fail(source, f"server.api_keys[{i}]", f"the same key as {other.name!r}; every key must "
                            "be different")
        keys.append(key)
    server = ServerConfig(
        host=srv.get("host", "127.0.0.1"),
        port=srv.get("port", 8080),
        api_keys=tuple(keys),
        max_body_bytes=int(srv.get("max_body_mb", 32) * 1024 * 1024),
        metrics_auth=srv.get("metrics_auth", False),
        admin_auth=srv.get("admin_auth", True),
        log_format=srv.get("log_format", "json"),
        log_level=srv.get("log_level", "info"),
        access_log=srv.get("access_log", True),
        max_upstream_body_bytes=int(srv.get("max_upstream_body_mb", 64) * 1024 * 1024),
        max_upstream_event_bytes=int(srv.get("max_upstream_event_mb", 16) * 1024 * 1024),
        max_stream_repair_chars=int(srv.get("max_stream_repair_kchars", 1024) * 1024),
        allow_unauthenticated=srv.get("allow_unauthenticated", False),
        idle_timeout=float(srv.get("idle_timeout", 75.0)),
        capture=_capture(srv.get("capture", False)),
    )
    default_policy = _policy(doc.get("defaults", {}), Policy())
    leftovers = {p: v for p, v in missing.items() if p[:1] not in (("providers",), ("server",))}
    if leftovers:
        path, names = next(iter(leftovers.items()))
        raise _fail(source, _where(list(path)), f"environment variable {', '.join(names)} is not set")

    providers: dict[str, ProviderConfig] = {}
    for name, raw in doc.get("providers", {}).items():
        if not isinstance(name, str):
            raise _fail(source, "providers", f"provider name {name!r} must be a string (quote it)")
        unset = _missing_under(missing, ("providers", name))
        reason = f"environment variable {', '.join(unset)} is not set" if unset else None
        if not raw.get("base_url") and not reason:
            if raw["type"] == "anthropic":
                raw = {**raw, "base_url": "https://api.anthropic.com/v1"}
            else:
                raise _fail(source, f"providers.{name}.base_url", "required for an openai provider")
        url = raw.get("base_url", "")
        if url and not reason and not url.lower().startswith(("http://", "https://")):
            raise _fail(source, f"providers.{name}.base_url", f"{url[:200]!r} is not an http:// or https:// URL "
                        f"(did you mean 'http://{url[:200]}'?)")
        providers[name] = ProviderConfig(
            name=name,
            type=raw["type"],
            base_url=raw.get("base_url", "").rstrip("/"),
            api_key=raw.get("api_key") or None,
            headers=tuple((raw.get("headers") or {}).items()),
            policy=_policy(raw, default_policy),
            disabled_reason=reason,
        )

    models: list[ModelConfig] = []
    seen: dict[str, str] = {}
    eng = doc.get("engines", {})
    for i, raw in enumerate(doc.get("models", [])):
        where = f"models[{i}]"
        name = raw["name"]
        engine = _engine_entry(raw, eng, source, where)
        if raw.get("preload") and engine is None:
            raise _fail(source, f"{where}.preload", "only an engine entry (engine: or command:) can be preloaded")
        targets: list[Target] = []
        if engine is not None:
            if "provider" in raw or "replicas" in raw:
                raise _fail(source, where, "an engine model takes no provider or replicas")
            pname = f"engine:{name}"
            # A local engine failing is not transient: no retries (a crash answers 502, the next request restarts it).
            providers[pname] = ProviderConfig(name=pname, type="engine", policy=replace(default_policy, retries=0),
                                              engine=name)
            targets.append(Target(pname, name))
        if "provider" in raw:
            targets.append(Target(raw["provider"], raw.get("model")))
        for r in raw.get("replicas", []):
            targets.append(Target(r["provider"], r.get("model", raw.get("model"))))
        if not targets and not raw.get("fallbacks"):
            raise _fail(source, where, "a model needs a provider, replicas, an engine/command, or fallbacks")
        for t in targets:
            if t.provider not in providers:
                raise _fail(source, f"{where}.provider", f"unknown provider {t.provider!r}; defined: "
                            + ", ".join(sorted(p for p in providers if not p.startswith("engine:"))))
        rp = raw.get("repair", {})
        model = ModelConfig(
            name=name,
            targets=tuple(targets),
            fallbacks=tuple(raw.get("fallbacks", [])),
            aliases=tuple(raw.get("aliases", [])),
            repair=RepairPolicy(
                mode=rp.get("mode", "repair"), format=rp.get("format", "auto"),
                on_failure=rp.get("on_failure", "content"), retries=rp.get("retries", 1),
            ),
            engine=engine,
            description=raw.get("description", ""),
        )
        for n in (name, *model.aliases):
            if n in seen:
                raise _fail(source, f"{where}.name", f"{n!r} is already defined by {seen[n]}")
            seen[n] = where
        if model.wildcard and (model.aliases or model.fallbacks):
            raise _fail(source, where, "a wildcard model takes no aliases or fallbacks")
        models.append(model)

    by_name = {m.name: m for m in models}
    for n in list(seen):
        for m in models:
            if n in m.aliases:
                by_name.setdefault(n, m)
    for i, m in enumerate(models):
        for fb in m.fallbacks:
            if fb not in by_name:
                raise _fail(source, f"models[{i}].fallbacks", f"unknown model {fb!r}")
    _check_cycles(models, by_name, source)
    return Config(
        server=server,
        providers=providers,
        models=tuple(models),
        engines=EnginesConfig(
            max_loaded=eng.get("max_loaded"),
            memory_budget_gb=eng.get("memory_budget_gb"),
            runtime_dir=eng.get("runtime_dir"),
            state_dir=eng.get("state_dir"),
        ),
        source=source,
    )


def _engine_entry(raw: Mapping[str, Any], eng: Mapping[str, Any], source: str, where: str) -> EngineEntry | None:
    if "engine" not in raw and "command" not in raw:
        return None
    if "engine" in raw and "command" in raw:
        raise _fail(source, where, "use either engine: mlx or command:, not both")
    if "engine" in raw and not raw.get("model"):
        raise _fail(source, f"{where}.model", "an engine model needs model: (a path, a hub id or tiny:demo)")
    command = raw.get("command")
    return EngineEntry(
        kind="mlx" if "engine" in raw else "command",
        model=raw.get("model"),
        command=tuple(command) if isinstance(command, list) else command,
        health_path=raw.get("health", "/health"),
        ttl=raw.get("ttl"),
        start_timeout=raw.get("start_timeout", eng.get("start_timeout", 120.0)),
        args=tuple(raw.get("engine_args", [])),
        env=tuple((raw.get("env") or {}).items()),
        memory_gb=raw.get("memory_gb"),
        preload=raw.get("preload", False),
    )


def _capture(raw: bool | Mapping[str, Any]) -> CaptureConfig | None:
    if raw is False:
        return None
    if raw is True:
        return CaptureConfig()
    d = CaptureConfig()
    return CaptureConfig(max_entries=raw.get("max_entries", d.max_entries),
                         file=str(Path(raw["file"]).expanduser()) if raw.get("file") else None,
                         max_file_mb=raw.get("max_file_mb", d.max_file_mb))


def _check_cycles(models: list[ModelConfig], by_name: Mapping[str, ModelConfig], source: str) -> None:
    def visit(m: ModelConfig, stack: tuple[str, ...]) -> None:
        if m.name in stack:
            raise _fail(source, "models", "fallback cycle: " + " -> ".join((*stack, m.name)))
        for fb in m.fallbacks:
            visit(by_name[fb], (*stack, m.name))

    for m in models:
        visit(m, ())
