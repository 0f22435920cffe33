"""The capture ring (`server.capture`): raw upstream output of tool calls the router repaired or could not make
valid, with the tools and options they were repaired against, redacted, in a bounded ring in memory (and, when
`server.capture.file` is set, appended to a JSONL file that `agentgate repair --replay FILE` re-runs).

The pipeline leaves a `ToolOutput` on the request's `Exchange`; when the request is finished the ring keeps it if
repair changed or refused something. Redaction replaces every configured secret (provider keys, provider header
values, client keys) and strings shaped like common API keys with "[redacted]", in the text, the tool calls, the
reasoning and the tools. Every field is bounded: text over MAX_TEXT characters is cut (and marked), tools over
MAX_TOOLS_BYTES are dropped (and marked). Text is redacted before it is cut, so a key across the cut goes whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config.key_shapes import KEY_SHAPES
from .config.model import CaptureConfig, Config, RepairPolicy
from .redact import cut_partials, escaped_pattern, whole_forms

log = logging.getLogger("agentgate")

MAX_TEXT = 64 * 1024  # characters of raw text, reasoning or serialized tool calls kept per capture
MAX_TOOLS_BYTES = 256 * 1024
_TOOLS_SHARED = 16  # distinct tools lists whose redacted copy new captures share
REDACTED = "[redacted]"


@dataclass(slots=True)
class ToolOutput:
    """What the upstream answered to a request with tools, and what repair made of it."""

    text: str | None
    tool_calls: list[Any] | None
    reasoning: str | None
    body: dict[str, Any]  # the request: tools, tool_choice, parallel_tool_calls
    policy: RepairPolicy
    result: Any  # repair.RepairResult


@dataclass
class Capture:
    id: int
    ts: float
    request_id: str
    model: str
    entry: str
    provider: str
    endpoint: str
    stream: bool
    outcome: str  # "repaired" | "failed"
    repairs: list[str]
    failures: list[str]
    errors: list[dict[str, Any]]
    format: str
    mode: str
    tool_choice: Any
    parallel_tool_calls: bool
    tools: list[Any] | None
    text: str | None
    tool_calls: list[Any] | None
    reasoning: str | None
    repaired: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "request_id": self.request_id, "model": self.model,
                "provider": self.provider, "outcome": self.outcome, "repairs": self.repairs,
                "failures": self.failures, "format": self.format}


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        found = tuple(sorted({s for s in secrets if s and len(s) >= 4}))
        self._found = found
        forms = whole_forms(found)  # their base64 spellings too
        self._secrets = re.compile("|".join(map(re.escape, forms))) if forms else None
        self._escaped = escaped_pattern(found)  # spelled with JSON escapes or percent-encodings, as a model can

    @classmethod
    def for_config(cls, config: Config) -> Redactor:
        secrets: list[str] = [k.key for k in config.server.api_keys]
        for p in config.providers.values():
            secrets.extend([*p.secrets, *(v for _, v in p.headers)])
        return cls(secrets)

    def text(self, value: str) -> str:
        if self._secrets is not None:
            value = self._secrets.sub(REDACTED, value)
        if self._escaped is not None and ("\\" in value or "%" in value):
            value = self._escaped.sub(REDACTED, value)
        value = cut_partials(value, self._found)  # a key cut short: all of what is left of it
        return KEY_SHAPES.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        """A JSON-able value with every string (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value


class CaptureRing:
    """The last `max_entries` captures; optionally appended to a JSONL file (rotated once at `max_file_mb`).

    Captures are numbered from 1 in each ring; `epoch` (random, one per ring: per router process) tells a reader
    that numbers it saw belong to another ring, as after a restart."""

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.epoch = secrets.token_hex(8)
        self._items: deque[Capture] = deque(maxlen=config.max_entries)
        self._next = 1
        self._file_failed = False
        self._tools: OrderedDict[bytes, tuple[Redactor, Any]] = OrderedDict()  # see _redacted_tools

    def reconfigure(self, config: CaptureConfig) -> None:
        """A reload changed `server.capture`: keep what fits, keep numbering."""
        self.config = config
        self._items = deque(self._items, maxlen=config.max_entries)

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, ex: Any, output: ToolOutput, redactor: Redactor) -> Capture | None:
        """Keep `output` when repair changed or refused something: its kinds are the request's record's (what the
        access log and `x-agentgate-repairs` show, `format:<family>` included: a call written as text and only
        recovered is a repair too)."""
        result = output.result
        outcome = "failed" if ex.failures else "repaired" if ex.repairs else None
        if outcome is None:
            return None
        notes: list[str] = []
        body = output.body
        tools = body.get("tools")
        if tools is not None:
            data = json.dumps(tools, ensure_ascii=False, default=str)
            if len(data) > MAX_TOOLS_BYTES:
                notes.append(f"tools not kept: {len(data)} bytes > {MAX_TOOLS_BYTES}")
                tools = None
            else:
                tools = self._redacted_tools(data, tools, redactor)
        cap = Capture(
            id=self._next, ts=round(time.time(), 3), request_id=ex.request_id, model=ex.requested[:200],
            entry=ex.model, provider=ex.provider, endpoint=ex.endpoint, stream=ex.stream, outcome=outcome,
            repairs=list(ex.repairs), failures=list(ex.failures),
            errors=[_cut(redactor.value(e.as_dict())) for e in result.errors],
            format=output.policy.format, mode=output.policy.mode, tool_choice=redactor.value(body.get("tool_choice")),
            parallel_tool_calls=body.get("parallel_tool_calls", True) is not False,
            tools=tools,
            text=_bounded(output.text, redactor, notes, "text"),
            tool_calls=redactor.value(output.tool_calls) if output.tool_calls and _fits(output.tool_calls, notes)
            else None,
            reasoning=_bounded(output.reasoning, redactor, notes, "reasoning"),
            repaired=_cut(redactor.value(result.message())), notes=notes,
        )
        self._next += 1
        self._items.append(cap)
        if self.config.file:
            self._append(cap)
        return cap

    def _redacted_tools(self, data: str, tools: Any, redactor: Redactor) -> Any:
        """The redacted tools list, one copy shared by the captures of the same list (by its encoding's digest;
        the last `_TOOLS_SHARED` lists looked up): each kept its own, 2 MiB for a 240 KB list."""
        key = hashlib.sha256(data.encode("utf-8", "surrogatepass")).digest()
        hit = self._tools.get(key)
        if hit is not None and hit[0] is redactor:
            self._tools.move_to_end(key)
            return hit[1]
        redacted = redactor.value(tools)
        self._tools[key] = (redactor, redacted)
        self._tools.move_to_end(key)
        while len(self._tools) > _TOOLS_SHARED:
            self._tools.popitem(last=False)
        return redacted

    @property
    def oldest(self) -> int:
        """The id of the oldest capture kept (the next id when none is): every lower id is gone."""
        return self._items[0].id if self._items else self._next

    @property
    def last(self) -> int:
        """The id of the latest capture made (0 before the first)."""
        return self._next - 1

    def list(self, after: int = 0, limit: int | None = None) -> list[Capture]:
        """The captures numbered after `after`, oldest first: the first `limit` of them when given."""
        found = [c for c in self._items if c.id > after]
        return found if limit is None else found[:limit]

    def get(self, capture_id: int) -> Capture | None:
        return next((c for c in self._items if c.id == capture_id), None)

    def _append(self, cap: Capture) -> None:
        path = Path(self.config.file or "")
        line = json.dumps(cap.to_dict(), ensure_ascii=False, default=str) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.stat().st_size + len(line) > self.config.max_file_mb * 1024 * 1024:
                os.replace(path, path.with_name(path.name + ".1"))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line)
            self._file_failed = False
        except OSError as exc:
            if not self._file_failed:  # once per run of failures, not once per capture
                log.warning("capture: cannot write %s: %s", path, exc.strerror or exc)
            self._file_failed = True


def _bounded(value: str | None, redactor: Redactor, notes: list[str], what: str) -> str | None:
    """`value` redacted, then cut at MAX_TEXT: cut first, a key across the cut would no longer be whole, and its
    first characters would stay."""
    if value is None:
        return None
    value = redactor.text(value)
    if len(value) > MAX_TEXT:
        notes.append(f"{what} cut at {MAX_TEXT} of {len(value)} characters")
        value = value[:MAX_TEXT]
    return value


def _fits(value: Any, notes: list[str]) -> bool:
    size = len(json.dumps(value, ensure_ascii=False, default=str))
    if size > MAX_TEXT:
        notes.append(f"upstream tool_calls not kept: {size} bytes > {MAX_TEXT}")
        return False
    return True


def _cut(value: Any) -> Any:
    """Every string of a redacted value cut at MAX_TEXT (redacted first, for the reason `_bounded` gives)."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT]
    if isinstance(value, list):
        return [_cut(v) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    return value


def read_captures(lines: Iterable[str]) -> Iterable[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, capture document or None, why it could not be read) for each non-blank line."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield n, None, f"not JSON: {exc}"
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("text", ""), (str, type(None))) \
                or "outcome" not in doc or ("text" not in doc and "tool_calls" not in doc):
            yield n, None, "not a capture object (a capture has an outcome and a text)"
            continue
        yield n, doc, None
