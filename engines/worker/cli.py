"""Command line of the engine worker: `agentgate engine ...` and `python -m engines ...`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from engines.worker.settings import BLAS_MODES, WorkerSettings, default_blas

DEFAULT_PORT = 8090
_OPTION = {"prefill_step_size": "prefill_step"}  # WorkerSettings field -> option, where the names differ
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from `1073741824`, `1e9`, `512MB`, `2GiB`, `1.5g` (k/m/g/t are powers of 1024 with `i`, 1000 without,
    and powers of 1024 for a bare letter)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 512MB, 2GiB, 1073741824)")
    value, unit, binary = float(m.group(1)), m.group(2).lower(), m.group(3)
    power = "kmgt".index(unit) + 1 if unit else 0
    explicit_decimal = not binary and text.strip().lower().endswith("b")
    base = 1000 if explicit_decimal else 1024
    size = value * base**power
    if not math.isfinite(size) or size > 2**62:
        raise argparse.ArgumentTypeError(f"not a size this machine could hold: {text!r}")
    return int(size)


def number_in(kind: Callable[[str], float], low: float | None, high: float | None, what: str, *,
              above: bool = False) -> Callable[[str], Any]:
    """An argparse type: `kind` of the text, finite, from `low` (exclusive with `above`) to `high`; the error names
    what was expected ("'70000' is not a port number (0-65535)")."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)) \
                or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return convert


port = number_in(int, 0, 65535, "a port number (0-65535)")
_positive = number_in(int, 1, None, "an integer of at least 1")
_MIB = 1 << 20
_megabytes = number_in(float, 0, 1 << 30, "a number of megabytes above 0", above=True)


def _mib_bytes(text: str) -> int:
    """`--max-body-mb` in bytes (MiB, as the router's server.max_body_mb); at least one byte."""
    return max(1, int(_megabytes(text) * _MIB))


class _StoreGiven(argparse.Action):
    """Stores the value and notes that the option was given (`given(args, "host")`), unlike its default."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether an option stored by `_StoreGiven` was on the command line."""
    return getattr(args, f"{dest}_given", False) is True


def listen_problem(args: argparse.Namespace) -> str | None:
    """Why the worker cannot listen where the options say: --host names a TCP address, --socket listens on a Unix
    socket only."""
    if args.socket is not None and given(args, "host"):
        return "--host is for TCP (with --port); with --socket the worker listens on the Unix socket only"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's options, on whichever parser runs it (`python -m engines`, `agentgate engine`, the config's check
    of a model's `engine_args`). An option is never abbreviated: the router sees what `engine_args` set by their
    names (`--max-body-m 5` would be `--max-body-mb` to argparse, unseen beside the one the router adds)."""
    parser.allow_abbrev = False
    S = WorkerSettings  # the defaults, stated once there
    parser.add_argument("--model", required=True,
                        help="model folder, Hugging Face id, or tiny:demo / tiny:random / tiny:script=<text>")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", help="listen on this Unix socket (created with mode 0600)")
    where.add_argument("--port", type=port, default=None, help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", action=_StoreGiven,
                        help="TCP address to bind (default 127.0.0.1; not with --socket)")
    parser.add_argument("--name", help="model id to serve (default: the model folder's name)")
    parser.add_argument("--max-batch", type=_positive, default=S.max_batch,
                        help=f"sequences decoded together (default {S.max_batch})")
    parser.add_argument("--cache-bytes", type=parse_size, default=S.cache_bytes,
                        help=f"prefix-cache budget, e.g. 512MB or 4GiB (default {S.cache_bytes >> 30}GiB; 0 disables)")
    parser.add_argument("--tool-format", default=S.tool_format,
                        help="tool-call family for repair (default auto: tokenizer_config, then the chat template)")
    parser.add_argument("--max-context", type=_positive, default=None,
                        help="context length in tokens (default: the model's max_position_embeddings)")
    parser.add_argument("--prefill-step", type=_positive, default=S.prefill_step_size,
                        help=f"prompt tokens per prefill chunk (default {S.prefill_step_size})")
    parser.add_argument("--cpu-threads", type=_positive, default=None,
                        help="on the CPU backend, CPU streams that long attention is split across "
                             "(default: usable cores divided by the BLAS threads, up to 8; 1 turns splitting off; "
                             "no effect on a GPU)")
    parser.add_argument("--kv-dir", metavar="PATH",
                        help="keep prefix-cache entries in this folder too, so that the engine resumes cached "
                             "conversations after an unload or restart (default: memory only)")
    parser.add_argument("--kv-disk-bytes", type=parse_size, default=S.kv_disk_bytes,
                        help=f"bound of --kv-dir, e.g. 1GiB (default {S.kv_disk_bytes >> 30}GiB; 0 disables)")
    parser.add_argument("--max-body-containers", type=_positive, default=S.max_body_containers,
                        help="a request body over 1 MiB with more JSON objects and arrays ({ and [) is a 413 before "
                             f"it is parsed (default {S.max_body_containers}, the router's server.max_body_containers)")
    parser.add_argument("--max-body-mb", dest="max_body_bytes", type=_mib_bytes, default=S.max_body_bytes,
                        metavar="MB", help="a larger request body is a 413, in MiB "
                                           f"(default {S.max_body_bytes // _MIB}, or the router's server.max_body_mb "
                                           "when that is larger)")
    parser.add_argument("--no-constrain", dest="constrain", action="store_false",
                        help="decode tool calls and JSON replies unconstrained (default: constrained to the tools' "
                             "schemas in the model's call format; repair runs either way)")
    parser.add_argument("--blas", choices=BLAS_MODES, default=default_blas(os.environ),
                        help="BLAS for MLX's CPU matmul on Linux: auto or openblas bind the optimised OpenBLAS of the "
                             "scipy-openblas32 package, bundled keeps the mlx[cpu] wheel's reference BLAS "
                             f"(default $AGENTGATE_BLAS, else {S.blas}; OpenBLAS runs one thread unless "
                             "OPENBLAS_NUM_THREADS says otherwise; nothing changes on macOS)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


class _Refused(Exception):
    """argparse's complaint about one option, raised instead of printing it and exiting."""


class _CheckingParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


_FROM_ENTRY = "\0entry"  # what the router's supervisor passes for --model and --name (see plan_launch)


def engine_args_problem(args: Sequence[str]) -> str | None:
    """Why a worker the router starts with these extra `args` (a model's engine_args) would refuse to start or
    ignore the entry's own settings, in one line; None when they are usable. The worker's own parser reads them,
    so what it would refuse at launch is refused at load, before a reload stops a running engine for them."""
    parser = _CheckingParser(prog="agentgate engine", add_help=False)
    add_arguments(parser)
    try:
        parsed = parser.parse_args(["--model", _FROM_ENTRY, "--name", _FROM_ENTRY, *args])
    except _Refused as exc:
        return str(exc)
    if parsed.model != _FROM_ENTRY or parsed.name != _FROM_ENTRY:
        return "--model and --name come from the entry (its model: and name:), not from engine_args"
    if parsed.socket is not None or parsed.port is not None:
        return "--socket and --port are chosen by the router: its engines listen on a Unix socket it names"
    if given(parsed, "host"):
        return "--host is chosen by the router: its engines listen on a Unix socket it names, not on TCP"
    if parsed.tool_format != "auto":
        from repair import FAMILIES

        if parsed.tool_format not in FAMILIES:
            return f"unknown --tool-format {parsed.tool_format!r}; use auto or one of {', '.join(FAMILIES)}"
    return None


def run(args: argparse.Namespace) -> int:
    problem = listen_problem(args) or start_problem(args)
    if problem:
        print(f"agentgate engine: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bind_blas(args.blas)
    runner: Callable[[Coroutine[Any, Any, int]], int]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return int(runner(_main(args)))
    except KeyboardInterrupt:
        return 130


def start_problem(args: argparse.Namespace) -> str | None:
    """Why the worker would refuse these options before listening (its --tool-format, --model, --kv-dir), in one
    line. Asked before anything imports MLX or the server: a refusal costs none of their imports."""
    if args.tool_format != "auto":
        from repair import FAMILIES

        if args.tool_format not in FAMILIES:
            return f"unknown --tool-format {args.tool_format!r}; use auto or one of {', '.join(FAMILIES)}"
    return model_problem(args.model) or kv_dir_problem(args.kv_dir)


def bind_blas(mode: str) -> None:
    """Bind the BLAS before anything imports MLX (engines/worker/blas.py), then check what MLX really calls."""
    from engines.worker import blas

    blas.bind(mode)
    info = blas.verify()
    logging.getLogger("agentgate.engine").info("blas: %s (%s)", info.blas, info.library or info.reason)


def model_problem(model: str) -> str | None:
    """Why `--model` cannot be loaded, said before listening (the load runs later, on the model thread, where a
    folder that does not exist would end in the hub library's repo-id error, and one without a model in mlx-lm's
    FileNotFoundError): a tiny spec that names no tiny model, a path (it starts with /, ~ or ., or is not one
    `owner/name` hub id) with no folder there, or a folder without what mlx-lm loads, or a tiny model not built yet
    whose cache folder cannot be written (the build on the model thread would fail with the file system's error)."""
    from engines.worker.modeldir import folder_problem
    from engines.worker.tiny import is_tiny_spec, tiny_cache_problem, tiny_spec_problem

    if is_tiny_spec(model):
        return tiny_spec_problem(model) or tiny_cache_problem(model)
    if not model.strip():
        return "--model is empty: give a model folder, a Hugging Face id or a tiny: spec"
    path = Path(model).expanduser()
    if path.exists():
        return folder_problem(path, model)
    if model.startswith(("/", "~", ".")) or model.count("/") != 1:
        return f"no such model folder: {model}"
    return _hub_problem(model)


def _hub_problem(model: str) -> str | None:
    """Why a hub id cannot be loaded here: it is no repo id, or it is not in the hub cache and the hub is offline
    (HF_HUB_OFFLINE). Else the hub library finds it in its cache, or downloads it."""
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError as exc:  # the hub's HFValidationError
        return f"{model} is neither a model folder nor a hub repo id ({exc})"
    if isinstance(cached, str) or not constants.HF_HUB_OFFLINE:
        return None
    return f"{model} is not in the local hub cache and HF_HUB_OFFLINE is set"


def kv_dir_problem(kv_dir: str | None) -> str | None:
    """Why `--kv-dir` can hold no folder: it, or a folder above it, is a file (the worker would run with the disk
    cache off, the option set aside). What else fails there (permissions, a full disk) is logged when the model
    loads, and the worker runs from memory."""
    if not kv_dir:
        return None
    path = Path(kv_dir).expanduser()
    for part in (path, *path.parents):
        if part.exists():
            return None if part.is_dir() else f"--kv-dir {kv_dir}: {part} is a file, not a folder"
    return None


async def _main(args: argparse.Namespace) -> int:
    from engines.worker.server import serve, wait_ready

    log = logging.getLogger("agentgate.engine")
    # every setting is an option of the same name (`--prefill-step` sets prefill_step_size)
    settings = WorkerSettings(**{f.name: getattr(args, _OPTION.get(f.name, f.name)) for f in fields(WorkerSettings)})
    port = DEFAULT_PORT if args.port is None else args.port
    try:
        worker = await serve(settings, host=args.host, port=port, socket_path=args.socket)
    except OSError as exc:
        print(f"agentgate engine: cannot listen: {exc}", file=sys.stderr)
        return 1
    where = f"unix:{worker.unix_socket}" if worker.unix_socket else worker.url
    log.info("listening on %s; loading model %s", where, args.model)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        loading = asyncio.ensure_future(wait_ready(worker.app))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not loading.done():
            loading.cancel()
            return 0
        stopping.cancel()
        try:
            loading.result()
        except RuntimeError as exc:
            print(f"agentgate engine: failed to load {args.model}: {exc}", file=sys.stderr)
            return 1
        from engines.worker import blas
        from engines.worker.server import WORKER

        state = worker.app[WORKER]
        sched = state.scheduler
        print(
            f"agentgate engine ready: model={state.name} listen={where} max_batch={sched.max_batch} "
            f"max_context={sched.max_context} tool_format={state.formatter.tool_format if state.formatter else '?'} "
            f"load={sched.load_seconds or 0:.1f}s blas={blas.current().blas} pid={os.getpid()}",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        log.info("shutting down")
        return 0
    finally:
        await worker.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines", description="Run one local MLX engine worker.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
