"""Judging one assistant message: does it hold valid calls to declared tools, with schema-valid arguments?

Failure kinds (per turn, the first one found):
  unknown_name     a call to a tool that was not declared
  invalid_json     arguments that are not a JSON object text
  schema_mismatch  arguments that do not match the tool's JSON Schema
  malformed_call   no `tool_calls`, but the text holds a call that repair could fix (see `diagnosis`)
  unparsed_call    no `tool_calls`, but the text holds a well-formed call the backend did not parse
  truncated        the text holds a call cut off before it ended
  no_call          plain text where a call was needed
For text replies, `diagnosis` lists what the repair library finds in the text (detect mode: nothing changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from repair import repair_message

from ..pipeline import repair_kinds
from .toolset import SCHEMAS, TOOLS

_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in SCHEMAS.items()}


@dataclass
class CallCheck:
    id: str | None
    name: str
    raw_arguments: str
    arguments: dict[str, Any] | None = None  # set when the arguments parse as a JSON object
    failure: str | None = None  # None: valid
    detail: str = ""


@dataclass
class Verdict:
    calls: list[CallCheck] = field(default_factory=list)
    failure: str | None = None  # None: every call is valid (and there is at least one)
    detail: str = ""
    diagnosis: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.failure is None


def check_call(raw: Any) -> CallCheck:
    fn = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(fn, dict):
        return CallCheck(None, "", "", failure="invalid_json", detail="a tool call without a function object")
    name = str(fn.get("name") or "")
    args = fn.get("arguments")
    check = CallCheck(raw.get("id") or None, name, args if isinstance(args, str) else json.dumps(args))
    if name not in _VALIDATORS:
        check.failure, check.detail = "unknown_name", f"{name!r} is not a declared tool"
        return check
    if not isinstance(args, str):
        check.failure, check.detail = "invalid_json", "arguments are not a JSON string"
        return check
    try:
        parsed = json.loads(args) if args.strip() else {}
    except (ValueError, RecursionError) as exc:  # (a model caught in a loop writes `[[[[...` past the bound)
        check.failure, check.detail = "invalid_json", f"arguments are not JSON: {exc}"
        return check
    if not isinstance(parsed, dict):
        check.failure, check.detail = "invalid_json", "arguments are not a JSON object"
        return check
    check.arguments = parsed
    error = next(iter(sorted(_VALIDATORS[name].iter_errors(parsed), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.path)
        check.failure, check.detail = "schema_mismatch", f"{where + ': ' if where else ''}{error.message}"
    return check


def check_message(message: dict[str, Any]) -> Verdict:
    raw_calls = message.get("tool_calls")
    if isinstance(raw_calls, list) and raw_calls:
        calls = [check_call(c) for c in raw_calls]
        bad = next((c for c in calls if c.failure), None)
        return Verdict(calls, bad.failure if bad else None, bad.detail if bad else "")
    text = message.get("content")
    return diagnose_text(text if isinstance(text, str) else "")


def diagnose_text(text: str) -> Verdict:
    """A reply without `tool_calls`: plain text, or a call left in the text (found by repair, detect mode)."""
    result = repair_message(text, list(TOOLS), mode="detect")
    fixes = sorted(repair_kinds(result))  # what the router would report
    if result.errors:
        first = result.errors[0]
        kinds = sorted({e.kind for e in result.errors} | set(fixes))
        detail = first.detail or "the text holds a call that cannot be made valid"
        return Verdict(failure=first.kind, detail=detail, diagnosis=kinds)
    if [k for k in fixes if not k.startswith("format:")]:
        return Verdict(failure="malformed_call", diagnosis=fixes,
                       detail="the text holds a malformed call: " + ", ".join(fixes))
    if result.tool_calls:
        return Verdict(failure="unparsed_call", detail="the text holds a call the backend did not parse",
                       diagnosis=fixes or [f"format:{result.format}" if result.format else "call_in_text"])
    snippet = " ".join(text.split())[:80]
    return Verdict(failure="no_call", detail=f"plain text: {snippet!r}" if snippet else "an empty reply")
