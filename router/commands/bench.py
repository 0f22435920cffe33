"""`agentgate bench tools --models a,b`: the tool-call reliability A/B. Probe conversations for every model
with repair (or, with --ab constrain, a local engine's constrained decoding) on and off, several runs each, run
concurrently; prints a table and writes JSON, CSV (and a PNG plot when matplotlib is installed) into --out.
Exit status 2 when a conversation could not run to the end, the backend failed a turn (an error turn: a 502, a
timeout; not judged, as `agentgate probe` counts it) or the results could not be written; 130 on Ctrl-C, after
writing what was measured (marked partial)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from engines.worker.cli import number_in

from ..probe.bench import BenchResult, BenchSettings, render_table, run_bench, write_outputs
from ..probe.client import credentials
from ..probe.report import Progress
from .probe import add_connection_arguments, credentials_problem, positive, shown

MAX_RUNS = 10_000  # every conversation's job is made up front
run_count = number_in(int, 1, MAX_RUNS, f"an integer from 1 to {MAX_RUNS}")


EPILOG = """\
exit status:
  0    every conversation ran to its end and every turn was judged (the models' failures are in the results)
  2    a conversation could not run to the end, the backend failed a turn (not judged), or the results could not
       be written
  130  Ctrl-C, after writing what was measured (marked partial)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=["tools"], help="what to bench: tools (tool-call reliability)")
    parser.add_argument("--models", required=True, help="comma-separated model names")
    add_connection_arguments(parser)
    parser.add_argument("--runs", type=run_count, default=5,
                        help=f"conversations per model and mode, 1 to {MAX_RUNS} (default: 5)")
    parser.add_argument("--concurrency", type=positive, default=4, help="conversations at once (default: 4)")
    parser.add_argument("--ab", choices=["repair", "constrain"], default="repair",
                        help="what the A/B turns on and off: the router's repair (default) or a local engine's "
                             "constrained decoding (repair stays on)")
    parser.add_argument("--out", default="agentgate-bench",
                        help="output directory (default: ./agentgate-bench)")


def run(args: argparse.Namespace) -> int:
    models = tuple(dict.fromkeys(m.strip() for m in args.models.split(",") if m.strip()))
    if not models:
        print("agentgate bench: --models names no model", file=sys.stderr)
        return 2
    clash = credentials_problem(args.base_url, args.api_key)
    if clash:
        print(f"agentgate bench: {clash}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:  # before the run, not after it: a bench may take hours
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"agentgate bench: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    settings = BenchSettings(models=models, base_url=args.base_url, api_key=args.api_key or None,
                             turns=args.turns, runs=args.runs, concurrency=args.concurrency, seed=args.seed,
                             stream=args.stream, timeout=args.timeout, max_tokens=args.max_tokens,
                             temperature=args.temperature, axis=args.ab, tool_choice=args.tool_choice)
    total = len(models) * len(settings.modes) * settings.runs * settings.turns
    progress = Progress(total, "bench tools")
    result = BenchResult(settings)
    try:
        asyncio.run(run_bench(settings, on_turn=lambda turn: progress.advance(turn.status), result=result))
    except KeyboardInterrupt:  # Ctrl-C: what was measured is still written, marked partial
        result.partial = True
    finally:
        progress.close()
    secrets = credentials(settings.base_url, settings.api_key)  # (a backend may echo the key in its answers)
    result.runs = [replace(r, report=shown(r.report, secrets)) for r in result.runs]
    print(render_table(result))
    if not _write(result, out):
        return 2
    if result.partial:
        return 130
    if result.unjudged is not None:
        print(f"agentgate bench: {result.unjudged}", file=sys.stderr)
    return 2 if result.errors or result.unjudged is not None else 0


def _write(result: BenchResult, out: Path) -> bool:
    """The result files, each path printed; False (said on stderr) when they could not all be written."""
    try:
        paths, note = write_outputs(result, out)
    except OSError as exc:  # a file in the way, a full disk: after a run that may have taken hours, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"agentgate bench: cannot write the results: {exc.strerror or exc}{where}", file=sys.stderr)
        return False
    for path in paths:
        print(f"wrote {path}")
    if note:
        print(note)
    return True
