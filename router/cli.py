"""`agentgate` command line: one sub-command per module in `router.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    from . import version

    parser = argparse.ArgumentParser(prog="agentgate", description="One OpenAI-compatible endpoint for every agent.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"agentgate {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
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
    args, unknown = build_parser().parse_known_args(given)
    if unknown:
        command: argparse.ArgumentParser = args._parser
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    given = list(argv) if argv is not None else sys.argv[1:]
    if given[:1] == ["serve"]:
        defer_sighup()  # a reload asked for while the router starts is done once it runs (see early_signals)
    args = parse(given)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `agentgate check | head`: the reader went away, which is not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
