"""`agentgate` command line: one sub-command per module in `router.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Each module exposes `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("router.commands.serve", "run the router daemon"),
    "check": ("router.commands.check", "validate a config file and print the routing table"),
    "engine": ("router.commands.engine", "run one local MLX engine worker"),
    "repair": ("router.commands.repair", "repair tool calls in raw model output (stdin -> JSON)"),
    "probe": ("router.commands.probe", "run a multi-turn tool-calling probe against a model"),
    "bench": ("router.commands.bench", "tool-call reliability A/B bench"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentgate", description="One OpenAI-compatible endpoint for every agent.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
