"""`agentgate` command line: one sub-command per module in `router.commands`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from .early_signals import defer_sighup

# name -> (module, one-line help). Each module exposes `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("router.commands.serve", "run the router daemon"),
    "check": ("router.commands.check", "validate a config file and print the routing table"),
    "engine": ("router.commands.engine", "run one local MLX engine worker"),
    "repair": ("router.commands.repair", "repair tool calls in raw model output (stdin -> JSON)"),
    "probe": ("router.commands.probe", "run a multi-turn tool-calling probe against a model"),
    "bench": ("router.commands.bench", "tool-call reliability A/B bench"),
}


EXAMPLES = """\
examples:
  agentgate serve                         serve ./config.yaml on 127.0.0.1:8080 (console at /ui)
  agentgate check -c config.yaml          validate a config and print its routing table
  agentgate probe demo --turns 10         a 10-turn tool-calling conversation through the router
  agentgate repair --tools tools.json < raw.txt       repair one raw model output
  agentgate repair --replay capture.jsonl             re-run captured outputs through today's repair code
  agentgate bench tools --models demo --runs 3 --out results/

'agentgate COMMAND --help' describes each command.
"""


def build_parser(given: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with `given` (the command line) only the command it names imports its module
    (its options, its epilog): the others are listed by name and help line, as the top-level usage shows them."""
    from . import version

    parser = argparse.ArgumentParser(prog="agentgate", description="One OpenAI-compatible endpoint for every agent.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"agentgate {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if given is None else next((a for a in given if not a.startswith("-")), "")
    for name, (module_name, help_text) in COMMANDS.items():
        if chosen is not None and name != chosen:
            if importlib.util.find_spec(module_name) is not None:
                sub.add_parser(name, help=help_text, description=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=getattr(module, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def parse(given: list[str]) -> argparse.Namespace:
    """The arguments of one command; an option it does not know is its own error (its usage, `agentgate COMMAND:
    error: ...`, exit 2), not that of `agentgate`, whose usage lists no command's options."""
    args, unknown = build_parser(given).parse_known_args(given)
    if unknown:
        command: argparse.ArgumentParser = args._parser
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    given = list(argv) if argv is not None else sys.argv[1:]
    serving = given[:1] == ["serve"]
    if serving:
        defer_sighup()  # a reload asked for while the router starts is done once it runs (see early_signals)
    with _sigterm_stops_the_start(serving):
        try:
            args = parse(given)
            return int(args._run(args) or 0)
        except StartStopped:
            print("agentgate: stopped by SIGTERM while starting: nothing was served", file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `agentgate check | head`: the reader went away, which is not an error of ours
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141


class StartStopped(BaseException):
    """SIGTERM came while `serve` was starting, before the running router handles it (a graceful stop): nothing was
    served yet, so the start is given up. A BaseException, as KeyboardInterrupt is: no `except Exception` of the
    start-up takes it for a failure of its own."""


def _stop_the_start(signum: int, frame: FrameType | None) -> None:
    raise StartStopped


@contextmanager
def _sigterm_stops_the_start(serving: bool) -> Iterator[None]:
    """While `serve` starts, SIGTERM ends it cleanly (exit status 0, one line), as a stop of the running router
    does; by default it killed the process without a word (143). The handler found is restored after."""
    if not serving or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _stop_the_start)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
