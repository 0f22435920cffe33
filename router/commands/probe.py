"""`agentgate probe MODEL`: a multi-turn tool-calling conversation against the router or any OpenAI-compatible
URL; prints a per-turn report. Exit status 0 when every turn was valid, 1 when the model failed a turn, 2 when the
probe could not judge every turn: it could not run to the end (unreachable, key refused, unknown model), or the
backend failed a turn (an error turn: a 502, a timeout) and the model failed none; 130 on Ctrl-C, after printing
the turns done (marked incomplete)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from engines.worker.cli import number_in

from ..probe.client import credentials
from ..probe.report import INTERRUPTED, ProbeReport, Progress, render_text
from ..probe.runner import DEFAULT_BASE_URL, ProbeSettings, new_report, run_probe
from ..redact import scrub_value

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

positive = number_in(int, 1, None, "an integer of at least 1")
MAX_TURNS = 1000  # past any model's context: the history is sent whole every turn
turn_count = number_in(int, 1, MAX_TURNS, f"an integer from 1 to {MAX_TURNS}")
seconds = number_in(float, 0, None, "a number of seconds above 0", above=True)  # 0, -1, nan: no timeout at all
temperature = number_in(float, 0, 2, "a temperature from 0 to 2")  # nan is not JSON: every request would fail


def base_url(text: str) -> str:
    """An http:// or https:// URL with a host: anything else would fail every turn as a transport error."""
    try:
        parts = urlsplit(text)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed [ of an IPv6 address
        usable = False
    if not usable:
        hint = f" (did you mean 'http://{text}'?)" if "://" not in text else ""
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL with a host{hint}")
    return text


def credentials_problem(url: str, api_key: str | None) -> str | None:
    """Why the probe cannot send these credentials, before any request: a key no header can carry, or a key
    beside a password in the URL (never quoting either)."""
    if api_key and any(ord(c) < 0x20 or ord(c) == 0x7F for c in api_key):
        return ("--api-key (or $AGENTGATE_API_KEY) holds a control character (a line break, a carriage return from "
                "a file with Windows line endings?): a key is one line of text")
    return credentials_clash(url, api_key)


def credentials_clash(url: str, api_key: str | None) -> str | None:
    """Why `url` and `api_key` cannot both be used: a user (and password) in the URL is sent as basic auth, in the
    Authorization header the key's bearer token takes."""
    if not api_key or urlsplit(url).username is None:
        return None
    return ("--base-url holds a user (basic auth) and --api-key (or $AGENTGATE_API_KEY) gives a key: both go in the "
            "Authorization header; drop one (--api-key '' sends no key)")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", type=base_url, default=DEFAULT_BASE_URL,
                        help=f"OpenAI-compatible base URL, /v1 included (default: {DEFAULT_BASE_URL})")
    parser.add_argument("--api-key", default=os.environ.get("AGENTGATE_API_KEY"),
                        help="bearer key (default: $AGENTGATE_API_KEY)")
    parser.add_argument("--turns", type=turn_count, default=40,
                        help=f"conversation turns, 1 to {MAX_TURNS} (default: 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tasks and the clock (default: 0)")
    parser.add_argument("--stream", action="store_true",
                        help="stream replies to measure time to first token (the router reports repair kinds "
                             "on non-stream replies only)")
    parser.add_argument("--timeout", type=seconds, default=600.0, help="seconds per request (default: 600)")
    parser.add_argument("--max-tokens", type=positive, default=2048,
                        help="max_tokens per reply (default: 2048)")
    parser.add_argument("--temperature", type=temperature, help="sampling temperature (default: the backend's)")
    parser.add_argument("--tool-choice", choices=["auto", "required"], default="auto",
                        help="tool_choice of every request (default: auto)")


EPILOG = """\
exit status:
  0    every turn valid (PASS)
  1    the model failed a turn (FAIL)
  2    not every turn could be judged (INCOMPLETE): the probe could not run to the end (unreachable, key
       refused, unknown model), or the backend failed a turn (a 502, a timeout) and the model failed none
  130  Ctrl-C, after printing the turns done"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name as the endpoint knows it")
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON (no progress bar)")
    parser.add_argument("--no-repair", action="store_true",
                        help="ask the router not to repair tool calls (header x-agentgate-repair: off)")
    parser.add_argument("--no-constrain", action="store_true",
                        help="ask a local engine to decode unconstrained (header x-agentgate-constrain: off)")


def run(args: argparse.Namespace) -> int:
    clash = credentials_problem(args.base_url, args.api_key)
    if clash:
        print(f"agentgate probe: {clash}", file=sys.stderr)
        return 2
    settings = ProbeSettings(model=args.model, base_url=args.base_url, api_key=args.api_key or None,
                             turns=args.turns, seed=args.seed, repair=not args.no_repair, stream=args.stream,
                             timeout=args.timeout, max_tokens=args.max_tokens, temperature=args.temperature,
                             constrain=not args.no_constrain, tool_choice=args.tool_choice)
    progress = Progress(settings.turns, f"probe {settings.model}", enabled=not args.json)
    report = new_report(settings)
    try:
        asyncio.run(run_probe(settings, on_turn=lambda turn: progress.advance(turn.status), report=report))
    except KeyboardInterrupt:  # Ctrl-C: the turns done are still reported, the run incomplete
        report.error = INTERRUPTED
    finally:
        progress.close()
    report = shown(report, credentials(args.base_url, args.api_key))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(render_text(report))
    if report.error == INTERRUPTED:
        print(f"agentgate probe: interrupted after {len(report.turns)} of {settings.turns} turns", file=sys.stderr)
        return 130
    problem = report.error or report.unjudged
    if problem is not None and not args.json:
        print(f"agentgate probe: {problem}", file=sys.stderr)
    return {"pass": 0, "fail": 1}.get(report.verdict, 2)


Shown = TypeVar("Shown", bound="DataclassInstance")


def shown(report: ProbeReport, secrets: tuple[str, ...]) -> ProbeReport:
    """`report` as it may be printed: the credentials the probe sends (`secrets`) redacted from everything a
    backend said in it, answers included (a call's name and arguments, the text, a finish reason), not only its
    errors: a backend may echo the key it was sent anywhere. Redacted before it is cut short for a column."""
    if not secrets:
        return report
    return _scrubbed(replace(report, turns=[_scrubbed(t, secrets) for t in report.turns]), secrets, skip="turns")


def _scrubbed(item: Shown, secrets: tuple[str, ...], skip: str = "") -> Shown:
    changes: dict[str, Any] = {f.name: scrub_value(getattr(item, f.name), secrets)
                               for f in fields(item)
                               if f.name != skip}
    return replace(item, **changes)
