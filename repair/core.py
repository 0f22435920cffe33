"""Orchestration: find call markup in the text, turn each attempt into a valid OpenAI call or a reported failure,
apply the request's tool_choice / parallel_tool_calls, and rebuild content and reasoning.

Policy (what the router relies on):
- A call is emitted only when its name resolves to exactly one declared tool and its arguments validate against
  that tool's schema (after unambiguous coercion). Anything else is reported in `errors`, is not emitted, and
  its original text stays in `content` verbatim (so nothing the model wrote is lost).
- Markup of emitted calls never appears in `content`; <think> blocks (Kimi K3's think channel too) and harmony
  analysis go to reasoning.
- Calls written inside <think> are emitted only when the model made no call outside it.
- tool_choice "none": no call is emitted. Calls in the text stay as written, unreported; the upstream's structured
  calls (an upstream that ignores "none") are written after the content as text, one JSON line each
  (`calls_as_text`), each reported as a `tool_choice_none` repair. A named
  tool_choice, or OpenAI's `allowed_tools`, refuses calls to other tools ("not_allowed"); "required", named or
  `allowed_tools` in mode "required" with no valid call adds "no_call".
  parallel_tool_calls=false keeps the first valid call ("parallel_trimmed" for the rest, whose markup goes).
- mode "detect": only calls that needed no repair are emitted; the rest stay as text, with the repairs they
  would have needed reported; <think>, harmony and Kimi K3 channels are left in the content.
- Work is bounded (candidates examined, calls parsed, json-repair input); past the bounds the rest of the text
  is left as it is.
- Everything before the first place a call may begin is passed through unchanged, which is what lets the
  streaming path emit prose at once and still agree exactly with this one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from repair import salvage
from repair.formats import FAMILIES, GENERIC_KINDS, NATIVE_KINDS, kimi_k3
from repair.formats.common import Ctx
from repair.index import ToolIndex
from repair.markers import LINE_START, CandidateFinder, Kind, KindSet, Lit, ticks_after
from repair.types import Parsed, RawCall, RepairIssue, RepairResult, Segment, json_object

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SEED_OPEN = "<seed:think>"
SEED_CLOSE = "</seed:think>"
THINK_TAGS = ((SEED_OPEN, SEED_CLOSE), (kimi_k3.THINK_OPEN, kimi_k3.THINK_CLOSE), (THINK_OPEN, THINK_CLOSE))


def _think_tags(text: str, p: int) -> tuple[str, str]:
    return next((tags for tags in THINK_TAGS if text.startswith(tags[0], p)), (THINK_OPEN, THINK_CLOSE))


def _think_end(text: str, s: int, closer: str, ctx: Ctx) -> tuple[int, int]:
    """Where a think block's text ends and where the block ends: at its close, else (Kimi K3) where a sibling
    channel opens (the response, the tools: left to be read), else at the end of the text."""
    close = ctx.find(closer, s)
    if close != -1:
        return close, close + len(closer)
    if closer == kimi_k3.THINK_CLOSE:
        sibling = min((at for m in kimi_k3.THINK_ENDS if (at := ctx.find(m, s)) != -1), default=-1)
        if sibling != -1:
            return sibling, sibling
    return len(text), len(text)


def _parse_think(text: str, p: int, ctx: Ctx) -> Parsed:
    opener, closer = _think_tags(text, p)
    s = p + len(opener)
    e, end = _think_end(text, s, closer, ctx)
    inner_text = text[s:e]
    inner = segment(inner_text, ctx.sub(inner_text))
    return Parsed(end, [Segment(p, end, "think", inner=inner)])


_THINK = Kind("think", (Lit(THINK_OPEN),), _parse_think, line_start=True)
_SEED_THINK = Kind("seed_think", (Lit(SEED_OPEN),), _parse_think)
_K3_THINK = Kind("kimi_k3_think", (Lit(kimi_k3.THINK_OPEN),), _parse_think, line_start=True, unfenced=True)
ALL_KINDS = KindSet((*NATIVE_KINDS, _THINK, _SEED_THINK, _K3_THINK, *GENERIC_KINDS))
NATIVE_ONLY = KindSet((*NATIVE_KINDS, _THINK, _SEED_THINK, _K3_THINK))
INSIDE_THINK = KindSet(NATIVE_KINDS)


def finder_for(index: ToolIndex, generic_forms: bool = True) -> CandidateFinder:
    """Candidates for a request: generic (name-gated) kinds only when tools are declared and `generic_forms`."""
    return CandidateFinder(ALL_KINDS if index and generic_forms else NATIVE_ONLY, index.resolve)


def finders(index: ToolIndex, generic_forms: bool = True) -> tuple[CandidateFinder, CandidateFinder]:
    """The index's candidate finders (all kinds, and those inside <think>): stateless, so made once per index (an
    index is cached per tools list) and shared by the one-shot repair and the stream's repairer."""
    key = "finders" if generic_forms else "finders_native"
    found: tuple[CandidateFinder, CandidateFinder] | None = index.memo.get(key)
    if found is None:
        found = index.memo[key] = (finder_for(index, generic_forms), CandidateFinder(INSIDE_THINK, index.resolve))
    return found


def make_ctx(text: str, index: ToolIndex, prefer: str | None, budget: salvage.Budget,
             generic_forms: bool = True) -> Ctx:
    finder, inner = finders(index, generic_forms)
    return Ctx(index, budget, prefer, text, finder, inner)


def segment(text: str, ctx: Ctx) -> list[str | Segment]:
    """`text` split into plain text and recognised segments, in order."""
    finder: CandidateFinder = ctx.finder
    if not text or not finder.may_contain(text):
        return [text] if text else []
    items: list[str | Segment] = []
    n = len(text)
    last = pos = 0
    # the backticks of `pos`'s line before it (inline code: see `markers.Ticks`), carried forward: read from the line's
    # start for each candidate, a long line of quoted examples took quadratic time; after a <think> block they are
    # read from the block's end
    ticks, ticks_at = LINE_START, 0
    content_at = -1  # where content began after a <think> block: a line start (the stream's too)
    limits = ctx.limits
    fenced = ctx.fences.inside  # (the candidates come in the text's order: it is read once along them)
    while pos < n and limits.handlers > 0 and limits.calls > 0:
        ticks, ticks_at = ticks_after(ticks, text, ticks_at, pos), pos
        hit = finder.find(text, pos, ticks, content_at, fenced)
        if hit is None:
            break
        p, kind = hit
        limits.handlers -= 1
        parsed = kind.handler(text, p, ctx)
        if parsed is None or parsed.end <= p:
            pos = p + 1
            continue
        if p > last:
            items.append(text[last:p])
        items.extend(parsed.segments)
        limits.calls -= sum(len(sg.calls) for sg in parsed.segments)
        last = pos = parsed.end
        if parsed.segments and parsed.segments[-1].kind == "think":
            ticks, ticks_at, content_at = LINE_START, pos, pos
            ctx.fences.line_start(text, pos)  # (a fence may open right there, as the stream reads it)
    if last < n:
        items.append(text[last:])
    return items


# --- per-call processing ---------------------------------------------------------------------------------------

@dataclass
class _Attempt:
    raw: RawCall
    seg: Segment | None
    in_think: bool = False
    ordinal: int = 0
    ok: bool = False
    name: str = ""
    arguments: str = ""
    repairs: list[RepairIssue] = field(default_factory=list)
    error: RepairIssue | None = None
    status: str = ""  # promoted | trimmed | refused | failed | held


def _fail(att: _Attempt, kind: str, detail: str) -> None:
    att.ok, att.error = False, RepairIssue(kind, detail)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # json.dumps's, built once
_JSON_WS = " \t\r\n"


def _canonical(value: dict[str, Any], text: str) -> str:
    """`incremental.canonical_arguments(text)` for wire arguments `text` whose strict decoding is `value`, without
    decoding them again: `value` re-encoded, or `text` as it is where that function would keep it (an end padded
    with what JSON does not count as whitespace, which the standard decoder refuses; a value it cannot encode)."""
    if len(text.strip()) != len(text.strip(_JSON_WS)):
        return text
    try:
        return _ENCODER.encode(value)
    except (ValueError, RecursionError):
        return text


def _process(att: _Attempt, index: ToolIndex, prefer: str | None, budget: salvage.Budget,
             canonical: bool = False) -> None:
    raw = att.raw
    att.repairs = [RepairIssue(r.kind, r.detail) for r in raw.repairs]
    if raw.failure is not None:
        att.error = RepairIssue(raw.failure.kind, raw.failure.detail)
        return
    name = raw.name
    if not isinstance(name, str) or not name.strip():
        return _fail(att, "invalid_json", "the call has no function name")
    if not index:
        return _fail(att, "unknown_name", f"{name!r}: no tools were declared")
    resolved = index.resolve(name)
    if resolved is None:
        return _fail(att, "unknown_name", f"{name!r} is not a declared tool")
    if resolved != name:
        att.repairs.append(RepairIssue("name_normalised", f"{name!r} -> {resolved!r}"))
    tool = index.get(resolved)
    tool.validator()  # builds the validator; notes what of the schema could not be used
    if tool.schema_notes:
        att.repairs.append(RepairIssue("schema_invalid", f"{resolved}: " + "; ".join(tool.schema_notes)[:300]))
    args: Any = raw.arguments
    if raw.wire_args is not None:
        if not raw.wire_args.strip():
            args = {}
        else:
            got = salvage.loads(raw.wire_args, budget=budget)
            if isinstance(got, salvage.Failed):
                return _fail(att, got.kind, f"{resolved}: {got.detail}")
            args = got.value
            att.repairs.extend(RepairIssue(k, d) for k, d in got.repairs)
    if isinstance(args, str):
        if not args.strip():
            args = {}
        else:
            inner = salvage.loads(args, budget=budget)
            if isinstance(inner, salvage.Decoded) and isinstance(inner.value, dict):
                args = inner.value
                att.repairs.append(RepairIssue("double_encoded", "arguments were a JSON string"))
                att.repairs.extend(RepairIssue(k, d) for k, d in inner.repairs)
    wire_object = args is not None  # `null` for the arguments (written or decoded) stands for none: `{}`
    if args is None:
        args = {}
    if raw.text_args and isinstance(args, dict):
        args = tool.type_text_values(args)
    if not isinstance(args, dict):
        return _fail(att, "schema_mismatch", f"{resolved}: arguments are not a JSON object")
    args, coerced, error = tool.conform(args)
    if error is not None:
        return _fail(att, "schema_mismatch", f"{resolved}: {error}")
    att.repairs.extend(RepairIssue("coerced_type", c) for c in coerced)
    if raw.wire_args is not None and not att.repairs and raw.wire_args.strip() and wire_object:
        # valid upstream arguments pass through byte for byte (canonical: their value re-encoded)
        att.arguments = _canonical(args, raw.wire_args) if canonical else raw.wire_args
    else:
        try:  # the text canonical_arguments keeps as it is: the decoded value encoded the same way
            att.arguments = _ENCODER.encode(args)
        except (TypeError, ValueError, RecursionError):
            return _fail(att, "schema_mismatch", f"{resolved}: arguments cannot be encoded as JSON")
    family = raw.family
    if family in ("json", "text", "tool_tags") or (prefer is not None and family is not None and family != prefer):
        att.repairs.append(RepairIssue(f"format:{family}", "calls recovered from another format"))
    if att.in_think:
        att.repairs.append(RepairIssue("think_block", "the call was written inside <think>"))
    att.ok, att.name = True, resolved


def _from_structured(tc: Any) -> RawCall:
    if not isinstance(tc, dict):
        return RawCall(name=None, failure=RepairIssue("invalid_json", "tool call is not an object"))
    fn = json_object(tc.get("function"), tc)
    call = RawCall(name=fn.get("name"), call_id=tc.get("id") if isinstance(tc.get("id"), str) and tc["id"] else None)
    if "arguments" in fn:
        a = fn["arguments"]
    elif "parameters" in fn:
        a = fn["parameters"]
        call.repairs.append(RepairIssue("parameters_key", '"parameters" used for "arguments"'))
    else:
        a = None
    if isinstance(a, str):
        call.wire_args = a
    else:
        call.arguments = a
    return call


def _as_sent(att: _Attempt, index: ToolIndex, canonical: bool) -> dict[str, Any] | None:
    """An upstream's structured call that cannot be made valid (an undeclared name, arguments its schema refuses),
    as it was sent: dropped, it left an empty answer (with `on_failure: content` an agent's turn ended with nothing
    said and nothing done), where passed on the agent's own tool layer answers it ("no such tool", the validation
    error) and the model corrects itself, as it does without the router. None without a name to send."""
    raw = att.raw
    name = raw.name if isinstance(raw.name, str) else None
    if att.error is None or att.error.kind not in _SENT_AS_IS or not name:
        return None  # (arguments cut off or broken are never sent: a command cut in half is another command)
    name = index.resolve(name) or name  # (as a stream sent its header: under the declared name)
    if raw.wire_args is not None:
        args = raw.wire_args
        try:
            value = json.loads(args)
        except (ValueError, RecursionError):
            value = None
        whole = isinstance(value, dict)
        if whole and canonical:  # what a stream's pieces add up to
            args = _canonical(value, args)
    else:
        whole = isinstance(raw.arguments, dict)
        try:
            args = _ENCODER.encode(raw.arguments) if whole else ""
        except (TypeError, ValueError, RecursionError):
            whole = False
    if not whole:
        return None
    return {"id": "", "type": "function", "function": {"name": name, "arguments": args}}


NONE_KIND = "tool_choice_none"  # the repair kind of structured calls sent as text under tool_choice "none"


@dataclass(frozen=True, slots=True)
class CallsAsText:
    """An answer's content with the upstream's structured calls written after it as text (see `calls_as_text`), and
    a `tool_choice_none` repair for each."""

    content: str | None
    repairs: list[RepairIssue]


def calls_as_text(content: str | None, tool_calls: list[Any] | None) -> CallsAsText:
    """Under tool_choice "none" no call goes out, but an upstream that ignores it (Ollama) still sends structured
    ones: they are the model's output, so they come as text after the content, as a server that honours "none"
    leaves a call the model wrote in its content (vLLM runs no tool parser then). Each is one line of JSON,
    `{"name": ..., "arguments": {...}}` (the form hermes and llama3 models write a call in), its arguments decoded
    where they are JSON text, else the text as it came."""
    lines: list[str] = []
    repairs: list[RepairIssue] = []
    for i, tc in enumerate(tool_calls or ()):
        if not isinstance(tc, dict):
            continue
        raw = _from_structured(tc)
        name = raw.name if isinstance(raw.name, str) else ""
        shown = {"name": name, "arguments": _shown_args(raw.wire_args if raw.wire_args is not None else raw.arguments)}
        lines.append(json.dumps(shown, ensure_ascii=False))
        repairs.append(RepairIssue(NONE_KIND, f"{name}: called under tool_choice none, sent as text", i))
    if not lines:
        return CallsAsText(content, repairs)
    lead = content or ""
    sep = "\n" if lead and not lead.endswith("\n") else ""
    return CallsAsText(lead + sep + "\n".join(lines), repairs)


def _shown_args(args: Any) -> Any:
    """A structured call's arguments as `calls_as_text` writes them: a JSON text decoded (also one a stream sent
    again whole after its pieces, as its whole answer has it once), none or blank `{}`, anything else as it is."""
    if args is None or (isinstance(args, str) and not args.strip()):
        return {}
    if not isinstance(args, str):
        return args
    try:
        return json.loads(args)
    except (ValueError, RecursionError):
        resent = salvage.resent_whole(args.strip())
        return args if resent is None else resent.value


_SENT_AS_IS = frozenset({"unknown_name", "schema_mismatch"})


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """What a request's `tool_choice` lets repair emit: `kind` "auto", "none", "required" or "named" (`named`: the
    tool it names); `allowed`: the tools OpenAI's `allowed_tools` lists, the only ones a call may name (None: any
    declared tool)."""

    kind: str
    named: str | None = None
    allowed: frozenset[str] | None = None

    def refused(self, name: str) -> str | None:
        """Why a call to `name` is not allowed (its `not_allowed` detail); None when it is."""
        if self.kind == "named":
            return None if name == self.named else f"{name}: tool_choice names {self.named!r}"
        if self.allowed is not None and name not in self.allowed:
            return f"{name}: not among tool_choice's allowed_tools ({', '.join(sorted(self.allowed)) or 'none'})"
        return None


_AUTO = ToolChoice("auto")
_NO_TOOLS = ToolIndex.of(None)


def _choice(tool_choice: Any, index: ToolIndex) -> ToolChoice:
    if tool_choice is None or tool_choice == "auto":
        return _AUTO
    if tool_choice == "none":
        return ToolChoice("none")
    if tool_choice in ("required", "any"):
        return ToolChoice("required")
    if isinstance(tool_choice, dict):
        if tool_choice.get("type") == "allowed_tools":
            return _allowed_tools(json_object(tool_choice.get("allowed_tools"), {}), index)
        # {"type": "function", "function": {"name"}}, a custom tool's {"type": "custom", "custom": {"name"}}, or bare
        fn = json_object(tool_choice.get("function", tool_choice.get("custom")), tool_choice)
        name = fn.get("name")
        if isinstance(name, str) and name:
            return ToolChoice("named", index.resolve(name) or name)
        t = tool_choice.get("type")
        if t in ("none", "required", "any"):
            return ToolChoice("none" if t == "none" else "required")
    return _AUTO


def _allowed_tools(spec: dict[str, Any], index: ToolIndex) -> ToolChoice:
    """OpenAI's `{"type": "allowed_tools", "allowed_tools": {"mode": "auto" | "required", "tools": [...]}}`: calls
    only to the tools it lists (each `{"type": "function", "function": {"name"}}`, a custom tool's, or bare); mode
    "required" asks for one, "auto" lets the model answer in text."""
    names: set[str] = set()
    tools = spec.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            name = json_object(tool.get("function", tool.get("custom")), tool).get("name")
            if isinstance(name, str) and name:
                names.add(index.resolve(name) or name)
    return ToolChoice("required" if spec.get("mode") == "required" else "auto", allowed=frozenset(names))


def requires_call(tool_choice: object) -> bool:
    """Whether `tool_choice` asks for a call (repair reports `no_call` when none is made valid): "required", a
    named tool, or `allowed_tools` in mode "required"."""
    return _choice(tool_choice, _NO_TOOLS).kind in ("required", "named")


def data_answer(response_format: object, tool_choice: object) -> bool:
    """Whether a request asks for a JSON answer (`response_format` json_object or json_schema) and allows one
    without a call: its content is then data, and a JSON object in it naming a declared tool is that data, not a
    call (repair it with `generic_forms=False`: only a format's own call markup is read). With a `tool_choice` that
    requires a call (`requires_call`) the answer must be a call, whatever form the model gave it (openai-agents
    sends both). The router and the engine both ask this."""
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema") \
        and not requires_call(tool_choice)


def check_options(format: str, mode: str) -> None:
    if format != "auto" and format not in FAMILIES:
        raise ValueError(f"unknown tool-call format {format!r}; expected 'auto' or one of {', '.join(FAMILIES)}")
    if mode not in ("repair", "detect"):
        raise ValueError(f"unknown repair mode {mode!r}; expected 'repair' or 'detect'")


def _default_id(_: int) -> str:
    """A fresh call id from the operating system's random source: ids of different clients' calls come from one
    process, so none may be predictable from the ones a client has seen (a seeded generator's would be)."""
    return "call_" + os.urandom(12).hex()  # (secrets.token_hex(12), without its three calls in between)


def fresh_id(call_id: str | None, used: set[str], n: int, make_id: Callable[[int], str],
             taken: Container[str] = ()) -> str:
    """The id of the `n`th call out: the upstream's `call_id` when it has one not used yet (in this answer, or in
    `taken`: the conversation's earlier calls), else a new one from `make_id` (from `n` on); added to `used`."""
    if not call_id or call_id in used or call_id in taken:
        k = n
        call_id = make_id(k)
        while call_id in used and k < n + 1000:
            k += 1
            call_id = make_id(k)
    used.add(call_id)
    return call_id


# --- assembly --------------------------------------------------------------------------------------------------

def _collect(items: list[str | Segment], in_think: bool, out: list[_Attempt]) -> None:
    for it in items:
        if isinstance(it, Segment):
            if it.kind == "calls":
                out.extend(_Attempt(c, it, in_think=in_think) for c in it.calls)
            elif it.kind == "think":
                _collect(it.inner, True, out)


def lead_trim(text: str) -> str:
    """Text that follows removed markup without the blank space before it, but with the indentation of its first
    line (an indented code block or continuation line stays indented): the spaces and line breaks up to the last
    line break go, and spaces on the markup's own line."""
    body = text.lstrip()
    lead = text[:len(text) - len(body)]
    nl = lead.rfind("\n")
    return lead[nl + 1:] + body if nl >= 0 and body else body


class _Builder:
    def __init__(self, text: str, removed_calls: set[int], structural: bool) -> None:
        self.text = text
        self.removed = removed_calls
        self.structural = structural
        self.groups: list[list[str]] = [[]]
        self.reasoning: list[str] = []

    def _cut(self) -> None:
        self.groups.append([])

    def raw(self, seg: Segment) -> str:
        return self.text[seg.start:seg.end]

    def add(self, items: list[str | Segment]) -> None:
        for it in items:
            if isinstance(it, str):
                self.groups[-1].append(it)
            elif it.kind == "calls":
                if id(it) in self.removed:
                    self._cut()
                    if it.text:
                        self.groups[-1].append(it.text)
                        self._cut()
                else:
                    self.groups[-1].append(self.raw(it))
            elif not self.structural:
                self.groups[-1].append(self.raw(it))
            elif it.kind == "content":
                self._cut()
                self.groups[-1].append(it.text)
                self._cut()
            elif it.kind == "reasoning":
                self.reasoning.append(it.text)
                self._cut()
            else:  # think
                self.reasoning.append(self._think_text(it, it_text=self.text))
                self._cut()

    def _think_text(self, seg: Segment, it_text: str) -> str:
        opener, closer = _think_tags(it_text, seg.start)
        inner_text = it_text[seg.start + len(opener):seg.end]
        if inner_text.endswith(closer):
            inner_text = inner_text[: -len(closer)]
        parts: list[str] = []
        for it in seg.inner:
            if isinstance(it, str):
                parts.append(it)
            elif it.kind == "calls" and id(it) in self.removed:
                parts.append("\n")
            elif it.kind == "think":
                parts.append(self._think_text(it, inner_text))
            elif it.kind in ("content", "reasoning"):
                parts.append(it.text)
            else:
                parts.append(inner_text[it.start:it.end])
        return "".join(parts)

    def content(self) -> str:
        groups = ["".join(g) for g in self.groups]
        if len(groups) == 1:
            return groups[0]
        parts = [groups[0].rstrip()] + [lead_trim(g).rstrip() for g in groups[1:]]
        return "\n\n".join(p for p in parts if p)


def _rebuilt(body: str, items: list[str | Segment], attempts: list[_Attempt], mode: str) -> tuple[str, str]:
    """The content and the reasoning found in it, rebuilt from the text's `items` once the attempts are decided."""
    # a block's text goes once every call in it went out (or was trimmed); a call that did not keeps the whole
    # block's text in content, as it would alone (a block's calls have no spans of their own)
    removed = {id(a.seg) for a in attempts if a.seg is not None and a.status in ("promoted", "trimmed")}
    removed -= {id(a.seg) for a in attempts if a.seg is not None and a.status not in ("promoted", "trimmed")}
    builder = _Builder(body, removed, structural=mode != "detect")
    builder.add(items)
    return builder.content(), "\n\n".join(r.strip() for r in builder.reasoning if r.strip())


def repair_message(
    text: str | None, tools: list[dict[str, Any]] | ToolIndex | None, *, tool_calls: list[dict[str, Any]] | None = None,
    tool_choice: object = None, parallel_tool_calls: bool = True, format: str = "auto",
    reasoning_content: str | None = None, mode: str = "repair",
    id_factory: Callable[[int], str] | None = None, canonical: bool = False, generic_forms: bool = True,
    keep_failed_calls: bool = False, text_calls_first: bool = False, taken_ids: Container[str] = (),
) -> RepairResult:
    """Repair one assistant message: raw text (and/or upstream structured tool_calls) -> OpenAI message.
    `canonical`: every call's arguments as `incremental.canonical_arguments` would give them (what a stream's
    pieces add up to), made from the value decoded here rather than by decoding the text again.
    `generic_forms=False`: only a format's own markup is a call, never bare JSON, fences, bare Python calls or prose
    forms (for an answer the client asked to be JSON data: `response_format`, where such an object is the data).
    `keep_failed_calls`: an upstream structured call that cannot be made valid, whole but naming no declared tool
    or with arguments its schema refuses, is kept as it was sent (still reported in `errors`): see `_as_sent`.
    `text_calls_first`: the calls found in the text are taken before the upstream's structured calls (which otherwise
    come first: a whole answer does not say which came first), as a stream whose text call went out before any
    structured call began had them; parallel_tool_calls false then keeps the text's first valid call.
    `taken_ids`: call ids the conversation already holds; an upstream call id among them is replaced (a server
    numbering its calls per reply, `call_0` on every turn, gave a new call the id of one an agent had run)."""
    check_options(format, mode)
    index = ToolIndex.of(tools)
    make_id = id_factory or _default_id
    body = text or ""
    budget = salvage.Budget()
    prefer = None if format == "auto" else format
    items = segment(body, make_ctx(body, index, prefer, budget, generic_forms)) if body else []  # no text: calls only

    attempts = [_Attempt(_from_structured(tc), None) for tc in (tool_calls or [])]
    found: list[_Attempt] = []
    _collect(items, False, found)
    outside = bool(attempts) or any(not a.in_think for a in found)
    in_text = [a for a in found if outside is False or not a.in_think]
    attempts = in_text + attempts if text_calls_first else attempts + in_text
    if not attempts and reasoning_content and index:
        # no call anywhere else: a call in the upstream's reasoning is the one made in a think block that a
        # server's reasoning parser took out of the content (vLLM, llama.cpp: its tool parser never sees it), as
        # a call inside <think> is; the reasoning stays as it came (a stream sent it as it came)
        inner = make_ctx(reasoning_content, index, prefer, budget).sub(reasoning_content)
        _collect(segment(reasoning_content, inner), True, attempts)
    for i, att in enumerate(attempts):
        att.ordinal = i
        _process(att, index, prefer, budget, canonical)

    choice = _choice(tool_choice, index)
    kind = choice.kind
    repairs: list[RepairIssue] = []
    errors: list[RepairIssue] = []
    out_calls: list[dict[str, Any]] = []
    as_sent: list[tuple[_Attempt, dict[str, Any]]] = []  # failed structured calls kept (`keep_failed_calls`)
    used_ids: set[str] = set()
    valid = 0
    for att in attempts:
        if kind == "none":  # no calls wanted: what the model wrote stays text (its structured calls join it, below)
            att.status = "refused"
            continue
        if not att.ok:
            att.status = "failed"
            assert att.error is not None
            errors.append(RepairIssue(att.error.kind, att.error.detail, att.ordinal))
            passed = _as_sent(att, index, canonical) if keep_failed_calls and att.seg is None else None
            if passed is None:
                continue
            # a structured call: out as the upstream sent it (reported all the same). One to a declared tool whose
            # arguments came as text keeps its place, as a stream sends it (its header went out before its
            # arguments failed); the others come after the valid calls (see below)
            if parallel_tool_calls and att.error.kind == "schema_mismatch" and att.raw.wire_args is not None \
                    and choice.refused(passed["function"]["name"]) is None:
                passed["id"] = fresh_id(att.raw.call_id, used_ids, len(out_calls), make_id, taken_ids)
                out_calls.append(passed)
            else:
                as_sent.append((att, passed))
            continue
        if mode == "detect" and att.repairs:
            att.status = "held"
            repairs.extend(RepairIssue(r.kind, r.detail, att.ordinal) for r in att.repairs)
            continue
        if (why := choice.refused(att.name)) is not None:
            att.status = "refused"
            errors.append(RepairIssue("not_allowed", why, att.ordinal))
            continue
        if not parallel_tool_calls and out_calls:  # (no call kept as sent is among them: see above)
            att.status = "trimmed"
            repairs.append(RepairIssue("parallel_trimmed", f"{att.name}: parallel_tool_calls is false",
                                       att.ordinal))
            continue
        att.status = "promoted"
        valid += 1
        repairs.extend(RepairIssue(r.kind, r.detail, att.ordinal) for r in att.repairs)
        call_id = fresh_id(att.raw.call_id, used_ids, len(out_calls), make_id, taken_ids)
        out_calls.append({"id": call_id, "type": "function",
                          "function": {"name": att.name, "arguments": att.arguments}})
    if kind in ("required", "named") and not valid:
        errors.append(RepairIssue("no_call", "tool_choice requires a call and none was made valid"))
    # the other calls kept as sent come after the valid ones (a stream never starts them: it sends them at its
    # end), only to the tools tool_choice allows, and none beside a valid call when parallel_tool_calls is false
    kept = [(a, c) for a, c in as_sent if choice.refused(c["function"]["name"]) is None]
    for att, call in kept[:(0 if out_calls else 1)] if not parallel_tool_calls else kept:
        call["id"] = fresh_id(att.raw.call_id, used_ids, len(out_calls), make_id, taken_ids)
        out_calls.append(call)

    only = items[0] if len(items) == 1 else None
    plain = not items or isinstance(only, str)  # no markup: the text is the content
    content: str | None = only if isinstance(only, str) else ""
    extracted = ""
    if not plain:
        content, extracted = _rebuilt(body, items, attempts, mode)
    if content == "" and (out_calls or text is None):
        content = None
    if kind == "none" and tool_calls:  # the upstream's calls, which the request refused, as text (not lost)
        shown = calls_as_text(content, tool_calls)
        content, repairs = shown.content, shown.repairs
    reasoning = reasoning_content or ""
    if extracted:
        reasoning = reasoning + "\n\n" + extracted if reasoning else extracted
    family = next((a.raw.family for a in attempts if a.raw.family), None) if attempts else None
    if family is None and not plain:
        family = next((it.family for it in items if isinstance(it, Segment) and it.family), None)
    return RepairResult(content=content, tool_calls=out_calls, reasoning_content=reasoning or None,
                        repairs=repairs, errors=errors, format=family)
