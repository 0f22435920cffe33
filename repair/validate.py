"""Validate-only: a message whose producer already ran repair (a local engine) is checked, never repaired again.

Contract (what the router relies on when it takes this path instead of `repair_message` / `StreamRepairer`):
- Content and reasoning pass through untouched: nothing is scanned for call markup, so text the producer left
  as prose (markup it could not or would not make a call of) stays prose.
- Each structured call is checked: its name is a declared tool (exactly: no normalising), its arguments are a
  JSON object text that validates under the tool's schema (the request's compiled `ToolIndex`). A call that
  fails is not emitted and is reported in `errors` ("unknown_name", "invalid_json", "schema_mismatch"); a
  valid call goes out with its arguments byte for byte.
- The request's tool_choice and parallel_tool_calls apply as in `repair_message`: under "none" no call goes
  out, each structured call comes as text after the content (`calls_as_text`, a "tool_choice_none" repair), a
  named choice refuses other tools ("not_allowed"), "required"/named without a valid call adds "no_call",
  parallel_tool_calls=false keeps the first call ("parallel_trimmed").
- What the producer reported (its repair kinds and failures, `Reported`) is part of the result, so a caller
  counts each repair once: the producer made it, this path only carries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from repair.core import _choice, _default_id, calls_as_text
from repair.incremental import ToolArgsDelta, ToolCallStart
from repair.index import ToolIndex
from repair.types import (
    ContentDelta,
    ReasoningDelta,
    RepairIssue,
    RepairResult,
    StreamEvent,
    ToolCallDelta,
    name_with,
)

MAX_REPORTED = 64  # issues taken from a producer's report (a bound: the report comes over the wire)
MAX_DETAIL = 300
ValidateEvent = StreamEvent | ToolCallStart | ToolArgsDelta


@dataclass(frozen=True)
class Reported:
    """What the producer of a message reported about its own repair: the kinds it repaired and the calls it
    could not make valid (as `RepairIssue.as_dict` writes them)."""

    repairs: tuple[str, ...] = ()
    failures: tuple[RepairIssue, ...] = ()

    @classmethod
    def parse(cls, value: object, repairs_header: str | None = None) -> Reported:
        """From `{"repairs": [kind, ...], "tool_call_failures": [{kind, detail, call_index}, ...]}` (anything
        else is ignored) and/or a comma-separated repairs header."""
        doc = value if isinstance(value, dict) else {}
        kinds = [k for k in (repairs_header or "").split(",") if k]
        listed = doc.get("repairs")
        if isinstance(listed, list):
            kinds += [k for k in listed if isinstance(k, str) and k]
        failures = doc.get("tool_call_failures")
        issues = [_issue(f) for f in failures[:MAX_REPORTED]] if isinstance(failures, list) else []
        return cls(tuple(sorted(set(kinds[:MAX_REPORTED]))), tuple(i for i in issues if i is not None))

    def as_dict(self) -> dict[str, Any]:
        return {"repairs": list(self.repairs), "tool_call_failures": [i.as_dict() for i in self.failures]}

    def __bool__(self) -> bool:
        return bool(self.repairs or self.failures)


def _issue(value: object) -> RepairIssue | None:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str) or not value["kind"]:
        return None
    detail = value.get("detail")
    index = value.get("call_index")
    return RepairIssue(value["kind"][:64], detail[:MAX_DETAIL] if isinstance(detail, str) else "",
                       index if isinstance(index, int) and not isinstance(index, bool) else None)


def check_call(call: object, index: ToolIndex) -> tuple[str, str, str | None] | RepairIssue:
    """(name, arguments, upstream id) of a valid structured call, or what is wrong with it."""
    if not isinstance(call, dict):
        return RepairIssue("invalid_json", "tool call is not an object")
    fn = call.get("function")
    fn = fn if isinstance(fn, dict) else call
    name = fn.get("name")
    if not isinstance(name, str) or name not in index.tools:
        return RepairIssue("unknown_name", f"{name!r} is not a declared tool")
    args = fn.get("arguments")
    if not isinstance(args, str):
        return RepairIssue("schema_mismatch", f"{name}: arguments are not a JSON text")
    try:
        value = json.loads(args)
    except (ValueError, RecursionError):
        return RepairIssue("invalid_json", f"{name}: arguments are not valid JSON")
    if not isinstance(value, dict):
        return RepairIssue("schema_mismatch", f"{name}: arguments are not a JSON object")
    error = index.get(name).first_error(value)
    if error is not None:
        return RepairIssue("schema_mismatch", f"{name}: {error}")
    cid = call.get("id")
    return name, args, cid if isinstance(cid, str) and cid else None


@dataclass
class _Policy:
    """tool_choice and parallel_tool_calls applied to checked calls, in order."""

    index: ToolIndex
    tool_choice: object
    parallel: bool
    make_id: Callable[[int], str]
    calls: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[RepairIssue] = field(default_factory=list)
    errors: list[RepairIssue] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.choice = _choice(self.tool_choice, self.index)
        self.kind = self.choice.kind

    def add(self, ordinal: int, checked: tuple[str, str, str | None] | RepairIssue, call_id: str | None = None
            ) -> dict[str, Any] | None:
        if self.kind == "none" and not (isinstance(checked, RepairIssue) and checked.kind == "unrepaired"):
            return None  # (written as text instead: `as_text`; one not all kept is lost, and reported)
        if isinstance(checked, RepairIssue):
            self.errors.append(RepairIssue(checked.kind, checked.detail, ordinal))
            return None
        name, args, upstream_id = checked
        if (why := self.choice.refused(name)) is not None:
            self.errors.append(RepairIssue("not_allowed", why, ordinal))
            return None
        if not self.parallel and self.calls:
            self.repairs.append(RepairIssue("parallel_trimmed", f"{name}: parallel_tool_calls is false", ordinal))
            return None
        cid = call_id or upstream_id
        k = len(self.calls)
        while not cid or cid in self.ids:
            cid = self.make_id(k)
            k += 1
        self.ids.add(cid)
        out = {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        self.calls.append(out)
        return out

    def as_text(self, content: str | None, tool_calls: Sequence[Any]) -> str | None:
        """`content` with the calls written after it as text (tool_choice "none"), each a repair."""
        shown = calls_as_text(content, list(tool_calls))
        self.repairs += shown.repairs
        return shown.content

    def result(self, content: str | None, reasoning: str | None, reported: Reported) -> RepairResult:
        errors = [*reported.failures, *self.errors]
        if self.kind in ("required", "named") and not self.calls and not any(e.kind == "no_call" for e in errors):
            errors.append(RepairIssue("no_call", "tool_choice requires a call and none was made valid"))
        repairs = [RepairIssue(k) for k in reported.repairs] + self.repairs
        return RepairResult(content=content, tool_calls=self.calls, reasoning_content=reasoning, repairs=repairs,
                            errors=errors, format=None)


def validate_message(content: str | None, tools: ToolIndex | Sequence[Any] | None, *,
                     tool_calls: Sequence[Any] | None = None, tool_choice: object = None,
                     parallel_tool_calls: bool = True, reasoning_content: str | None = None,
                     reported: Reported = Reported(),
                     id_factory: Callable[[int], str] | None = None) -> RepairResult:
    """Check an already-repaired assistant message (see the module docstring). The result's `tool_calls` are the
    valid calls in order (the input's dicts are not changed); content and reasoning are the input's."""
    policy = _Policy(ToolIndex.of(tools), tool_choice, parallel_tool_calls, id_factory or _default_id)
    for i, call in enumerate(tool_calls or ()):
        policy.add(i, check_call(call, policy.index))
    if policy.kind == "none" and tool_calls:
        content = policy.as_text(content, tool_calls)
    return policy.result(content, reasoning_content, reported)


class _Part:
    __slots__ = ("args", "id", "name", "started")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.args: list[str] = []
        self.started: int | None = None  # the index its header went out under

    def wire(self) -> dict[str, Any]:
        """The call as its fragments add up to."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": "".join(self.args)}}


class StreamValidator:
    """The streaming sibling of `validate_message`, with `StreamRepairer`'s interface: text and reasoning go out
    as they arrive (no marker scan); structured call fragments are assembled and checked at finish().
    With `incremental`, a call to a tool the request allows goes out as it arrives (its header with its first
    argument piece, then the pieces as given); one that then fails its check is reported in `after_header`, as is
    a "failed_after_header" the producer reported. Otherwise calls are held to the end and go out whole, so a
    caller can still refuse or re-ask; and once the producer has reported a failure (`report`, which comes before
    the text it held) the text that follows is held to the end too. `max_chars` bounds what is kept: past it,
    text still goes out but is no longer kept, and calls whose fragments were not all kept fail ("unrepaired")."""

    def __init__(self, tools: ToolIndex | Sequence[Any] | None, *, tool_choice: object = None,
                 parallel_tool_calls: bool = True, incremental: bool = False,
                 id_factory: Callable[[int], str] | None = None, max_chars: int | None = None) -> None:
        self._policy = _Policy(ToolIndex.of(tools), tool_choice, parallel_tool_calls, id_factory or _default_id)
        self._incremental = incremental
        self._room = max_chars if max_chars is not None else -1  # characters that may still be kept (-1: any)
        self._dropped = False
        self._content: list[str] | None = None
        self._reasoning: list[str] | None = None
        self._parts: dict[int, _Part] = {}
        self._started = 0
        self._reported = Reported()
        self._held: list[str] = []  # text after a reported failure (not incremental), emitted at finish()
        self._result: RepairResult | None = None
        self.after_header: list[RepairIssue] = []

    def feed(self, text: str) -> list[ValidateEvent]:
        """An assistant content delta: passed through as it is."""
        self._content = self._add(self._content, text)
        if not text:
            return []
        if self._held or (self._reported.failures and not self._incremental):
            self._held.append(text)
            return []
        return [ContentDelta(text)]

    def feed_reasoning(self, text: str) -> list[ValidateEvent]:
        """An upstream reasoning_content delta: passed through as it is."""
        self._reasoning = self._add(self._reasoning, text)
        return [ReasoningDelta(text)] if text else []

    def _add(self, kept: list[str] | None, text: str) -> list[str]:
        self._check_open()
        kept = [] if kept is None else kept
        if text and self._kept(text):
            kept.append(text)
        return kept

    def _kept(self, text: str) -> bool:
        if self._room < 0:
            return True
        if len(text) > self._room:
            self._room, self._dropped = 0, True
            return False
        self._room -= len(text)
        return True

    def report(self, reported: Reported) -> None:
        """The producer's own report (it arrives with its last chunk)."""
        self._reported = reported

    def feed_tool_calls(self, deltas: Sequence[Any]) -> list[ValidateEvent]:
        """Upstream delta.tool_calls fragments."""
        self._check_open()
        events: list[ValidateEvent] = []
        for d in deltas or ():
            if not isinstance(d, dict):
                continue
            i = d.get("index")
            key = i if isinstance(i, int) else len(self._parts)
            part = self._parts.get(key)
            if part is None:
                part = self._parts[key] = _Part()
            if isinstance(d.get("id"), str) and d["id"] and part.id is None:
                part.id = d["id"]
            fn = d.get("function")
            fn = fn if isinstance(fn, dict) else {}
            if isinstance(fn.get("name"), str) and part.started is None:
                part.name = name_with(part.name, fn["name"])
            args = fn.get("arguments")
            if not isinstance(args, str) or not args:
                continue
            if self._kept(args):
                part.args.append(args)
            if self._incremental:
                events += self._forward(part, args)
        return events

    def call_at(self, index: object) -> tuple[int | None, str] | None:
        """`StreamRepairer.call_at`: the call at upstream `index` (a delta without one starts another here)."""
        part = self._parts.get(index) if isinstance(index, int) else None
        return None if part is None else (part.started, part.id or "")

    def _forward(self, part: _Part, args: str) -> list[ValidateEvent]:
        if part.started is not None:
            return [ToolArgsDelta(part.started, args)]
        if part.name not in self._policy.index.tools or not self._may_start(part.name) or self._dropped:
            return []
        part.started = self._started
        self._started += 1
        part.id = part.id or self._policy.make_id(part.started)
        return [ToolCallStart(part.started, part.id, part.name), ToolArgsDelta(part.started, "".join(part.args))]

    def _may_start(self, name: str) -> bool:
        p = self._policy
        if p.kind == "none" or p.choice.refused(name) is not None:
            return False
        return p.parallel or self._started == 0

    def finish(self) -> list[ValidateEvent]:
        """The calls held to the end (whole), after checking every call."""
        self._check_open()
        events: list[ValidateEvent] = [ContentDelta("".join(self._held))] if self._held else []
        policy = self._policy
        for ordinal, key in enumerate(sorted(self._parts)):
            part = self._parts[key]
            checked: tuple[str, str, str | None] | RepairIssue = RepairIssue(
                "unrepaired", f"{part.name}: the stream passed the bound on what is kept") if self._dropped else \
                check_call(part.wire(), policy.index)
            out = policy.add(ordinal, checked, part.id)
            if part.started is not None and out is None:
                self.after_header.append(RepairIssue("failed_after_header",
                                                     f"{part.name}: it is not part of the validated answer",
                                                     part.started))
            elif part.started is None and out is not None:
                events.append(ToolCallDelta(self._started, out["id"], part.name, out["function"]["arguments"]))
                self._started += 1
        for issue in self._reported.failures:  # the producer's own late failures are reported the same way
            if issue.kind == "failed_after_header" and all(i.call_index != issue.call_index for i in self.after_header):
                self.after_header.append(issue)
        content = None if self._content is None else "".join(self._content)
        if policy.kind == "none" and self._parts and not self._dropped:
            shown = policy.as_text(content, [p.wire() for _, p in sorted(self._parts.items())])
            events.append(ContentDelta((shown or "")[len(content or ""):]))
            content = shown
        reasoning = "".join(self._reasoning) if self._reasoning else None
        self._result = policy.result(None if content == "" and policy.calls else content, reasoning,
                                     self._reported)
        return events

    @property
    def result(self) -> RepairResult:
        """The final result; available after finish()."""
        if self._result is None:
            raise RuntimeError("StreamValidator.result is available after finish()")
        return self._result

    def _check_open(self) -> None:
        if self._result is not None:
            raise RuntimeError("the stream is finished")
