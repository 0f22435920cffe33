"""`agentgate engine`: run one local MLX engine worker (OpenAI-compatible API over a Unix socket or TCP)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engines.worker.cli import add_arguments as engine_arguments

    engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from engines.worker.cli import run as engine_run

    return engine_run(args)
