"""`agentgate serve [--config FILE]`: run the router daemon."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace

from engines.worker.cli import port

from ..config import ConfigError, load_config
from ..config.auth import is_loopback, open_relay_refusal, unset_keys_warning
from ..config.load import _host_problem
from ..config.model import Config, ServerConfig, all_secrets
from ..config.notices import config_warnings
from ..logs import keep_out_of_logs, setup_logging

EPILOG = """\
exit status:
  0  stopped by SIGTERM or SIGINT (Ctrl-C), once the requests in flight drained; SIGTERM while it starts stops
     it at once (nothing was served)
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
    config, held = load_held(args.config)
    if isinstance(config, ConfigError):
        return _refused(held, str(config))
    problem = _host_override_problem(args.host)
    if problem:
        return _refused(held, problem)
    given = {"host": args.host or None, "port": args.port, "log_format": args.log_format or None,
             "log_level": args.log_level or None}
    overrides = {k: v for k, v in given.items() if v is not None}  # (they win on every reload too)
    served = replace(config, server=replace(config.server, **overrides))
    refusal = open_relay_refusal(served.server)
    if refusal:
        return _refused(held, f"refusing to start: {refusal}")
    setup_logging(served.server.log_format, served.server.log_level)
    keep_out_of_logs(all_secrets(served))  # (a reload sets those of the config it loads)
    replay(held, dropped=said_at_load(config))
    for warning in [*(f"{served.source}: {w}" for w in config_warnings(served)), *startup_warnings(served.server)]:
        logging.getLogger("agentgate").warning("%s", warning)
    from ..app import ListenError
    from ..app import run as run_app

    try:
        run_app(served, config_path=args.config, overrides=overrides)
    except ListenError as exc:
        print(f"agentgate: {exc}", file=sys.stderr)
        return 1
    return 0


def load_held(path: str) -> tuple[Config | ConfigError, list[logging.LogRecord]]:
    """The config at `path` (or why it cannot be used), and what loading it logged, held: written once logging is
    set up, in its format (the config's warnings, judged again on serve's options over the file's settings)."""
    with _held_records() as held:
        try:
            return load_config(path), held
        except ConfigError as exc:
            return exc, held


def _refused(held: list[logging.LogRecord], message: str) -> int:
    """Exit status 2 with `message`, after what loading logged (as logging writes it before it is set up)."""
    replay(held)
    print(f"agentgate: {message}", file=sys.stderr)
    return 2


def _host_override_problem(host: str | None) -> str | None:
    """Why `--host` cannot be listened on (a URL, `host:port`, brackets), as `server.host` is judged, or None."""
    problem = _host_problem(host) if host else None
    if host is None or problem is None:
        return None
    said = problem.replace("server.port", "--port")
    return f"--host {host[:200]!r} {said}: --host is a host name or an IP address"


def said_at_load(config: Config) -> set[str]:
    """The warnings loading `config` logged, judged on the file's own settings: serve says them again for the
    settings it runs with (its options over the file's), and check in its own words."""
    return {f"{config.source}: {line}" for line in config_warnings(config)}


class _Holder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _held_records() -> Iterator[list[logging.LogRecord]]:
    """The records of the `agentgate` loggers logged inside the block, held instead of written (before logging is
    set up they would be bare text among the log's lines)."""
    logger, holder = logging.getLogger("agentgate"), _Holder()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(holder)
    try:
        yield holder.records
    finally:
        logger.removeHandler(holder)
        logger.propagate = propagate


def replay(records: list[logging.LogRecord], dropped: Collection[str] = ()) -> None:
    """Write the held `records` as logging now writes them, but those whose message is in `dropped`."""
    for record in records:
        if record.getMessage() not in dropped:
            logging.getLogger(record.name).handle(record)
