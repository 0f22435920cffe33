"""`agentgate repair`: repair tool calls in raw model output.

    agentgate repair --tools TOOLS.json [--format auto|FAMILY] < raw.txt     -> one JSON object
    agentgate repair --jsonl [--tools DEFAULT.json] < in.jsonl > out.jsonl   -> one JSON object per line
    agentgate repair --replay capture.jsonl [--json]                        -> captured outputs, repaired again

A plain repair writes JSON either way, so --json beside it changes nothing; with --replay it turns the table into
one JSON line per capture.

Exit status: 0 when every output was valid, repaired or had no call; 1 when repair reported a failure for some
output (or, with --replay, a capture still fails); 2 for unusable input (an unreadable file, a closed stdin or
stdout, bad options, no line that could be read: no {"id", "tools", "text"} object, with --replay no capture).

JSONL input lines are {"id", "tools", "text"} (tools: an OpenAI tools array, possibly empty; when absent the
--tools file applies). Output lines are {"id", "content", "tool_calls", "reasoning_content", "repairs", "errors",
"format"}; a line that cannot be read gives an output line whose errors say why. Call ids are call_0, call_1, ...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TextIO

from repair import FAMILIES, RepairResult, ToolIndex, repair_message

_INDEX_CACHE_SIZE = 64


EPILOG = """\
exit status:
  0  every output was valid, repaired or had no call (--replay: no capture fails now)
  1  repair reported a failure for some output (--replay: a capture still fails, or newly fails)
  2  unusable input: an unreadable file, a closed stdin or stdout, an option that does not apply, no usable line
     (--replay: no readable capture)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tools", metavar="TOOLS.json",
                        help="OpenAI tools array (or an object with a \"tools\" key); the default for --jsonl lines")
    parser.add_argument("--format", default="auto", choices=("auto", *FAMILIES),
                        help="tool-call format of the model (default: auto-detect)")
    parser.add_argument("--jsonl", action="store_true",
                        help='read {"id","tools","text"} lines from stdin, write one result line each')
    parser.add_argument("--mode", default="repair", choices=("repair", "detect"),
                        help="detect: report problems but change nothing")
    parser.add_argument("--tool-choice", default=None, metavar="CHOICE",
                        help='"auto", "none", "required" or a function name')
    parser.add_argument("--no-parallel", action="store_true", help="as parallel_tool_calls=false: keep one call")
    parser.add_argument("--replay", metavar="FILE",
                        help="re-run the captures in FILE (server.capture.file, or the console's download) through "
                             "the current repair code, each with the tools and options the router recorded, and "
                             "compare with what the router recorded")
    parser.add_argument("--json", action="store_true",
                        help="with --replay: one JSON line per capture instead of the table (the summary goes to "
                             "stderr); --json without --replay: the same JSON a plain repair always writes")


def _ids(i: int) -> str:
    return f"call_{i}"


def _tools_from(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and "tools" in doc:
        doc = doc["tools"]
    if not isinstance(doc, list) or not all(isinstance(t, dict) for t in doc):
        raise ValueError("tools must be an array of tool objects")
    return doc


def _load_tools(path: str | None) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as fh:
        return _tools_from(json.load(fh))


def _tool_choice(value: str | None) -> Any:
    if value is None or value in ("auto", "none", "required"):
        return value
    return {"type": "function", "function": {"name": value}}


def _issues(items: list[Any]) -> list[dict[str, Any]]:
    return [i.as_dict() for i in items]


def _document(result: RepairResult) -> dict[str, Any]:
    return {"content": result.content, "tool_calls": result.tool_calls, "reasoning_content": result.reasoning_content,
            "repairs": _issues(result.repairs), "errors": _issues(result.errors), "format": result.format}


class _IndexCache:
    """Tool indexes reused across lines that declare identical tools (bounded, least recently used out)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, ToolIndex] = OrderedDict()

    def get(self, tools: list[dict[str, Any]]) -> ToolIndex:
        key = json.dumps(tools, sort_keys=True, ensure_ascii=False)
        index = self._items.get(key)
        if index is None:
            index = ToolIndex(tools)
            self._items[key] = index
            if len(self._items) > _INDEX_CACHE_SIZE:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return index


def _run_jsonl(args: argparse.Namespace, default_tools: list[dict[str, Any]] | None, stdin: Iterable[bytes | str],
               stdout: TextIO) -> int:
    failed = False
    usable = 0  # lines repair could be run on
    cache = _IndexCache()
    opts = {"format": args.format, "mode": args.mode, "tool_choice": _tool_choice(args.tool_choice),
            "parallel_tool_calls": not args.no_parallel, "id_factory": _ids}
    for lineno, raw in enumerate(stdin, 1):
        line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not line.strip():
            continue
        line_id: Any = None
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("each line must be a JSON object")
            line_id = doc.get("id")
            text = doc.get("text")
            if text is not None and not isinstance(text, str):
                raise ValueError('"text" must be a string')
            tools = _tools_from(doc["tools"]) if doc.get("tools") is not None else (default_tools or [])
            result = repair_message(text, cache.get(tools), **opts)
            out = {"id": line_id, **_document(result)}
            usable += 1
        except Exception as exc:
            out = {"id": line_id, "content": None, "tool_calls": [], "reasoning_content": None, "repairs": [],
                   "errors": [{"kind": "bad_input", "detail": f"line {lineno}: {exc}", "call_index": None}],
                   "format": None}
        failed = failed or bool(out["errors"])
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    stdout.flush()
    if not usable:
        print('agentgate repair: no usable line in the input (each line is a JSON object {"id", "tools", "text"})',
              file=sys.stderr)
        return 2
    return 1 if failed else 0


# the options of a plain repair, with their defaults: --replay repairs each capture with the options it recorded
_NOT_REPLAYED = (("--tools", "tools", None), ("--format", "format", "auto"), ("--mode", "mode", "repair"),
                 ("--tool-choice", "tool_choice", None), ("--no-parallel", "no_parallel", False),
                 ("--jsonl", "jsonl", False))


def _replay_clash(args: argparse.Namespace) -> str | None:
    """The first option given beside --replay that it would not use."""
    for flag, name, default in _NOT_REPLAYED:
        if getattr(args, name) != default:
            return (f"{flag} does not apply to --replay: each capture is repaired again with the tools and options "
                    "the router recorded for it")
    return None


def run(args: argparse.Namespace) -> int:
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to write the result
        print("agentgate repair: stdout is closed; the result is written to stdout (e.g. > out.json)", file=sys.stderr)
        return 2
    if args.replay:
        clash = _replay_clash(args)
        if clash is not None:
            print(f"agentgate repair: {clash}", file=sys.stderr)
            return 2
        return _replay(args.replay, as_json=args.json, stdout=sys.stdout)
    try:
        default_tools = _load_tools(args.tools)
    except (OSError, ValueError, RecursionError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"agentgate repair: cannot read --tools {args.tools!r}: {why}", file=sys.stderr)
        return 2
    if sys.stdin is None:  # started with stdin closed (`<&-`)
        print("agentgate repair: stdin is closed; the input is read from stdin (e.g. < raw.txt)", file=sys.stderr)
        return 2
    try:
        if args.jsonl:
            return _run_jsonl(args, default_tools, sys.stdin.buffer, sys.stdout)
        return _run_one(args, default_tools, sys.stdin.buffer.read())
    except OSError as exc:
        print(f"agentgate repair: cannot read stdin: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _run_one(args: argparse.Namespace, default_tools: list[dict[str, Any]] | None, raw: bytes) -> int:
    result = repair_message(raw.decode("utf-8", errors="replace"), default_tools, format=args.format, mode=args.mode,
                            tool_choice=_tool_choice(args.tool_choice), parallel_tool_calls=not args.no_parallel,
                            id_factory=_ids)
    sys.stdout.write(json.dumps(_document(result), ensure_ascii=False) + "\n")
    return 1 if result.errors else 0


# --- --replay ------------------------------------------------------------------------------------------------------

def replay_one(doc: dict[str, Any], cache: _IndexCache | None = None) -> dict[str, Any]:
    """One capture repaired again with the options the router used; `then` is what the router recorded."""
    tools = _tools_from(doc["tools"]) if doc.get("tools") is not None else []
    fmt = doc.get("format") or "auto"
    result = repair_message(
        doc.get("text"), (cache or _IndexCache()).get(tools), tool_calls=doc.get("tool_calls") or None,
        tool_choice=doc.get("tool_choice"), parallel_tool_calls=doc.get("parallel_tool_calls", True) is not False,
        format=fmt if fmt in FAMILIES else "auto", mode="detect" if doc.get("mode") == "detect" else "repair",
        reasoning_content=doc.get("reasoning"), id_factory=_ids)
    from ..pipeline import repair_kinds  # the kinds the router records (a call written as text: `format:<family>`)

    kinds = repair_kinds(result)
    now = "failed" if result.errors else "repaired" if kinds else "valid" if result.tool_calls else "none"
    then = str(doc.get("outcome") or "?")  # as text, whatever the file holds
    return {"id": doc.get("id"), "model": doc.get("model"), "then": then, "now": now,
            "then_kinds": sorted({*doc.get("repairs", []), *doc.get("failures", [])}),
            "now_kinds": sorted({*kinds, *(e.kind for e in result.errors)}),
            "changed": now != then, **_document(result)}


def _replay(path: str, *, as_json: bool, stdout: TextIO) -> int:
    from ..capture import read_captures

    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError as exc:
        print(f"agentgate repair: cannot read --replay {path!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    cache = _IndexCache()
    counts = {"fixed": 0, "still_failing": 0, "regressed": 0, "same": 0, "changed": 0, "unreadable": 0}
    if not as_json:
        stdout.write(f"{'id':>6}  {'model':<20} {'then':<9} {'now':<9} kinds now\n")
    for lineno, doc, problem in read_captures(lines):
        if doc is None:
            counts["unreadable"] += 1
            row: dict[str, Any] = {"line": lineno, "error": problem}
        else:
            try:
                row = replay_one(doc, cache)
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                counts["unreadable"] += 1
                row = {"line": lineno, "id": doc.get("id"), "error": f"cannot replay: {exc}"}
        if "error" not in row:
            bad_then, bad_now = row["then"] == "failed", row["now"] == "failed"
            key = "fixed" if bad_then and not bad_now else "still_failing" if bad_now and bad_then else \
                "regressed" if bad_now else "changed" if row["changed"] else "same"
            counts[key] += 1
        if as_json:
            stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif "error" in row:
            stdout.write(f"{'line ' + str(lineno):>6}  {row['error']}\n")
        else:
            mark = "  <- changed" if row["changed"] else ""
            stdout.write(f"{row['id']!s:>6}  {str(row['model'])[:20]:<20} {row['then']:<9} {row['now']:<9} "
                         f"{', '.join(row['now_kinds']) or '-'}{mark}\n")
    total = sum(counts.values())
    summary = (f"{total} capture(s): {counts['fixed']} fixed, {counts['still_failing']} still failing, "
               f"{counts['regressed']} newly failing, {counts['same']} unchanged, "
               f"{counts['changed']} otherwise changed, {counts['unreadable']} unreadable")
    print(summary, file=sys.stderr if as_json else stdout)
    if counts["unreadable"] and total == counts["unreadable"]:
        return 2
    return 1 if counts["still_failing"] or counts["regressed"] else 0
