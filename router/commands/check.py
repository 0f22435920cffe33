"""`agentgate check [--config FILE]`: validate a config and print the resolved routing table."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engines.worker import blas
from engines.worker.settings import default_blas

from ..config import ConfigError
from ..config.auth import open_relay_refusal
from ..config.model import Config, ModelConfig, engine_provider
from ..config.notices import config_warnings
from ..engines_bridge import engine_availability
from ..routing import RoutingTable
from .serve import load_held, replay, said_at_load, startup_warnings

EPILOG = """\
exit status:
  0  valid (warnings, if any, on stderr and in the report: what serve would warn about as it starts)
  1  valid, but no model can be served here (none configured, or every one unavailable)
  2  invalid or unreadable, or serve would refuse to start"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default="config.yaml", help="config file (default: ./config.yaml)")


def run(args: argparse.Namespace) -> int:
    config, held = load_held(args.config)
    if isinstance(config, ConfigError):
        replay(held)
        print(f"agentgate: {config}", file=sys.stderr)
        return 2
    replay(held, dropped=said_at_load(config))
    for warning in config_warnings(config):
        print(f"agentgate: {config.source}: warning: {warning}", file=sys.stderr)
    refusal = open_relay_refusal(config.server)
    if refusal:
        print(f"agentgate: {config.source}: serve would refuse to start: {refusal}", file=sys.stderr)
        return 2
    for warning in startup_warnings(config.server):
        print(f"agentgate: {config.source}: warning: {warning}", file=sys.stderr)
    table = RoutingTable(config)
    if not config.models:
        print(f"agentgate: {config.source}: no models are configured, so every request would get 404; add a "
              "'models:' list (the shipped config.yaml has examples)", file=sys.stderr)
        return 1
    engines_out, notes = _engines_here(config)
    reasons = {m.name: _unavailable(table, m, engines_out) for m in config.models}
    available = [m for m in config.models if reasons[m.name] is None]
    verdict = "ok" if available else "valid, but no model is available (see UNAVAILABLE below)"
    print(f"{config.source}: {verdict} — listening on {config.server.host}:{config.server.port}, "
          f"{len(config.server.api_keys)} client key(s)")
    _print_warnings([*startup_warnings(config.server), *config_warnings(config)])
    print("\nproviders:")
    for name, p in config.providers.items():
        if p.type == "engine":
            continue
        status = f"disabled: {p.disabled_reason}" if p.disabled_reason else "enabled"
        print(f"  {name:<16} {p.type:<10} {p.shown_url:<40} {status}")
    print("\nmodels:")
    for row in table.names():
        m = row.model
        if row.alias_of:
            print(f"  {row.id:<24} -> alias of {row.alias_of}")
            continue
        chain = []
        for hop in table.resolve(m.name.replace("*", "<name>") if m.wildcard else m.name).hops:
            reps = " | ".join(f"{t.provider}:{t.model}" for t in hop.targets)
            chain.append(f"[{reps}]")
        reason = reasons[m.name]
        kind = f" ({m.engine.kind} engine)" if m.engine else ""
        note = f"  ({notes[m.name]})" if m.name in notes and not reason else ""
        print(f"  {row.id:<24} -> {' -> '.join(chain)}{kind}{'  UNAVAILABLE: ' + reason if reason else note}")
    engines = [m.engine for m in config.models if m.engine and m.engine.kind == "mlx"]
    if engines:
        print("\nlocal engines (MLX CPU matmul):")
        for spec in engines:
            env = {**os.environ, **spec.env}
            info = blas.plan(blas_mode(spec.args, env), env)
            said = info.library if info.blas == "openblas" else info.reason if info.mode != "bundled" else None
            threads = f", {info.threads} thread(s)" if info.threads else ""
            print(f"  {spec.name:<24} blas {info.mode} -> {info.blas}{threads}{f' ({said})' if said else ''}")
    return 0 if available else 1


def _print_warnings(warnings: list[str]) -> None:
    """The report's list of what serve warns about as it starts and what the config deserves a warning for (both
    on stderr too), so that a report kept or piped holds them: settings and variables named, never a key."""
    if warnings:
        print("\nwarnings:")
        for line in warnings:
            print(f"  {line}")


def _engines_here(config: Config) -> tuple[dict[str, str], dict[str, str]]:
    """The engine entries that cannot start here, as the running router's /v1/models judges them (provider ->
    why), and the notes on those that can (model name -> note, e.g. a download on first use)."""
    out: dict[str, str] = {}
    notes: dict[str, str] = {}
    for m in config.models:
        if m.engine is None:
            continue
        ok, note = engine_availability(m.engine)
        if not ok:
            out[engine_provider(m.name)] = note or "cannot start here"
        elif note:
            notes[m.name] = note
    return out, notes


def _unavailable(table: RoutingTable, m: ModelConfig, engines_out: dict[str, str]) -> str | None:
    """Why model `m` can never be served here, else None: every provider of its chain disabled, or an engine that
    cannot start here."""
    reason = table.unavailable_reason(m)
    if reason is not None or not engines_out:
        return reason
    targets = [t for hop in table.resolve(m.name.replace("*", "<name>") if m.wildcard else m.name).hops
               for t in hop.targets]
    if any(t.provider not in engines_out for t in targets) or not targets:
        return None
    return "; ".join(dict.fromkeys(engines_out[t.provider] for t in targets))


def blas_mode(args: Sequence[str], env: dict[str, str]) -> str:
    """The `--blas` a worker started with these engine_args and this environment runs with (as its CLI reads it)."""
    for i, arg in enumerate(args):
        if arg == "--blas" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--blas="):
            return arg.split("=", 1)[1]
    return default_blas(env)
