"""`agentgate serve [--config FILE]`: run the router daemon."""

from __future__ import annotations

import argparse
import logging
import sys

from engines.worker.cli import port

from ..config import ConfigError, load_config
from ..config.auth import is_loopback, open_relay_refusal, unset_keys_warning
from ..config.model import ServerConfig
from ..logs import setup_logging

EPILOG = """\
exit status:
  0  stopped by SIGTERM or SIGINT (Ctrl-C), once the requests in flight drained
  1  cannot listen on the address (in use, not permitted, no such address)
  2  the config is invalid or unreadable, or serve refuses to start (no client key beyond loopback)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default="config.yaml", help="config file (default: ./config.yaml)")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=port, help="override server.port")
    parser.add_argument("--log-format", choices=["json", "text"], help="override server.log_format")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override log level")


def startup_warnings(server: ServerConfig) -> list[str]:
    """What serve warns about as it starts (`check` prints the same): client key variables left unset, no key
    beyond loopback. Variables are named, never a value."""
    said = [w for w in (unset_keys_warning(server),) if w]
    if not server.api_keys and not is_loopback(server.host):
        said.append(f"serving WITHOUT client keys on {server.host} (server.allow_unauthenticated: true): anyone who "
                    "reaches this port can use every configured provider")
    return said


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"agentgate: {exc}", file=sys.stderr)
        return 2
    from dataclasses import replace

    given = {"host": args.host or None, "port": args.port, "log_format": args.log_format or None,
             "log_level": args.log_level or None}
    overrides = {k: v for k, v in given.items() if v is not None}  # (they win on every reload too)
    server = replace(config.server, **overrides)
    config = replace(config, server=server)
    refusal = open_relay_refusal(server)
    if refusal:
        print(f"agentgate: refusing to start: {refusal}", file=sys.stderr)
        return 2
    setup_logging(server.log_format, server.log_level)
    for warning in startup_warnings(server):
        logging.getLogger("agentgate").warning("%s", warning)
    from ..app import ListenError
    from ..app import run as run_app

    try:
        run_app(config, config_path=args.config, overrides=overrides)
    except ListenError as exc:
        print(f"agentgate: {exc}", file=sys.stderr)
        return 1
    return 0
