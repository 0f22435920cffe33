"""Streaming repair with results identical to `repair_message`, however the text is chunked.

Prose is emitted as soon as it is known not to begin a call: the text is held back from the first position
where a candidate (see `repair.markers`) is complete or may still complete, and trailing whitespace is held so
that it can be dropped if markup follows. Once a candidate is complete everything after it is held, and at
finish() the one-shot algorithm runs on the whole text; because that algorithm passes everything before the
first candidate through unchanged (stripping only the whitespace right before removed markup), the text
already emitted is always a prefix of its content, and the rest is emitted then, with the calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Container, Sequence
from typing import Any

from repair import salvage
from repair.core import (
    SEED_CLOSE,
    SEED_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    _canonical,
    _choice,
    _default_id,
    check_options,
    finders,
    fresh_id,
    lead_trim,
    repair_message,
    segment,
)
from repair.fences import Fences
from repair.formats import command_r, functionary, gemma4, kimi_k3
from repair.formats.common import MAX_CALLS, Ctx, Limits
from repair.incremental import ARR as _ARR
from repair.incremental import CHARS as _CHARS
from repair.incremental import (
    END_ARR,
    END_OBJ,
    END_STR,
    KEY,
    OBJ,
    STR,
    ArgsEmitter,
    JsonBroken,
    JsonEvents,
    ToolArgsDelta,
    ToolCallStart,
    string_run,
)
from repair.index import ToolIndex
from repair.markers import LINE_START, MATCH, NO, PARTIAL, Fenced, Ticks, in_code, ticks_after
from repair.slots import CallSlots, whole_json
from repair.types import (
    ContentDelta,
    RawCall,
    ReasoningDelta,
    RepairIssue,
    RepairResult,
    Segment,
    StreamEvent,
    ToolCallDelta,
    json_object,
    name_with,
)

Event = StreamEvent | ToolCallStart | ToolArgsDelta
HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"
# (opener, close, ends): `ends` None, candidates inside stop the streaming (a call in a <think> block is read); else
# nothing inside is markup (the format reads no call there) and the block stops where one of `ends` opens
STREAMED_THINKS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    (THINK_OPEN, THINK_CLOSE, None), (SEED_OPEN, SEED_CLOSE, None), (kimi_k3.THINK_OPEN, kimi_k3.THINK_CLOSE, None),
    (gemma4.CHANNEL_OPEN + gemma4.THOUGHT, gemma4.CHANNEL_CLOSE, (gemma4.OPEN,)),
    (command_r.THINK_OPEN, command_r.THINK_CLOSE, (command_r.ACTION_OPEN, command_r.RESPONSE_OPEN)))
# (opener, close, ends) of channels whose text is content, its markers removed (streamed as `_Think` streams a
# channel, as content): Command R7B's answer, which runs to its close, or (never closed) to an action
STREAMED_ANSWERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (command_r.RESPONSE_OPEN, command_r.RESPONSE_CLOSE, (command_r.ACTION_OPEN,)),)
# markers the one-shot repair removes, the text around them kept as content: dropped as they come (see `_drop`)
DROPPED = (*kimi_k3.MARKERS, functionary.ALL)
# why a call whose header went out failed, when the stream ended inside its arguments (they go out as they were cut,
# never closed: a command or a file cut in half is another command, another file)
CUT = "truncated: the stream ended inside its arguments, which stay as they were cut"
UNCLOSED = " (its arguments stay as they went out, not closed)"


class StreamRepairer:
    def __init__(self, tools: Any, *, tool_choice: object = None, parallel_tool_calls: bool = True,
                 format: str = "auto", mode: str = "repair", id_factory: Callable[[int], str] | None = None,
                 incremental: bool = False, max_chars: int | None = None, generic_forms: bool = True,
                 keep_failed_calls: bool = False, taken_ids: Container[str] = ()) -> None:
        self._index = ToolIndex.of(tools)
        self._finder, self._inner_finder = finders(self._index, generic_forms)
        self._opts: dict[str, Any] = {"tool_choice": tool_choice, "parallel_tool_calls": parallel_tool_calls,
                                      "format": format, "mode": mode, "id_factory": id_factory,
                                      "generic_forms": generic_forms, "keep_failed_calls": keep_failed_calls,
                                      "taken_ids": taken_ids}
        check_options(format, mode)
        self._chunks: list[str] = []
        self._fed = False
        self._ws: list[str] = []  # held whitespace (emitted once non-space text follows it)
        self._tail = ""           # text from the first position that may still begin a candidate
        self._ctx = ""            # the character before _tail ("" at the start), for line-start checks
        self._ticks: Ticks = LINE_START  # _tail's line's backticks before it (inline code: `markers.Ticks`)
        self._fences = Fences()   # the text's fenced blocks, read up to a window's start (see `_fenced`)
        self._emitted = 0         # characters of the text emitted as content
        self._holding = False
        self._plain = True        # no scan of the text found a complete candidate
        self._reasoning: list[str] = []
        self._fed_reasoning = False
        self._tool_parts: dict[int, _Part] = {}  # by call (see `slots`)
        self._slots = CallSlots()
        self._result: RepairResult | None = None
        # incremental mode (see the module docstring)
        self._incremental = incremental and mode == "repair"
        self._choice = _choice(tool_choice, self._index)
        self._choice_kind = self._choice.kind
        self._parallel = parallel_tool_calls
        self._make_id = id_factory or _default_id
        self._taken = taken_ids  # the conversation's call ids (see `repair_message`)
        self._max_chars = max_chars
        self._size = 0             # characters fed (text and tool-call fragments)
        self._text_size = 0        # characters of text fed (what `_chunks` holds, until the bound)
        self._hold_at = 0          # offset in the text where the held region begins
        self._sent_to = 0          # offset in the text up to which a <think> block that stopped went out
        self._overflowed = False
        self._spec: _Think | _Hermes | None = None
        self._spec_feeding = False  # inside `_spec_feed`: a feed of the next form waits in `_spec_next`
        self._spec_next: str | None = None
        self._spec_tried = False
        # what of the one-shot repair's bounds (candidates examined, calls parsed) and json-repair budget the text
        # before the held region took, as it took them (see `_inert`)
        self._limits = Limits()
        self._budget = salvage.Budget()
        self._prefer = None if format == "auto" else format
        self._new_group = False    # content after a removed block starts a new paragraph
        self._reasoning_out: list[str] = []
        self._started: list[_Started] = []
        self._native: dict[int, _Native] = {}
        self.after_header: list[RepairIssue] = []  # calls whose header went out and that then failed

    # --- input -------------------------------------------------------------------------------------------------

    def feed(self, text: str) -> list[Event]:
        """An assistant content delta."""
        self._check_open()
        if not text:
            return []
        self._fed = True
        if self._overflowed:
            return self._passthrough(text)
        self._chunks.append(text)
        self._size += len(text)
        self._text_size += len(text)
        if self._max_chars is not None and self._size > self._max_chars:
            return self._overflow(text)
        if self._holding:
            if self._spec is not None:
                return self._spec_feed(text)
            if self._incremental and not self._spec_tried:  # the held text was too short to tell: now?
                return self._maybe_spec("".join(self._chunks)[self._hold_at:])
            return []
        events = self._prose(text)
        return events + self._maybe_spec(self._tail) if self._holding else events

    def _prose(self, text: str) -> list[Event]:
        """Text outside held markup: emitted up to where a candidate may begin."""
        head = None if self._tail else self._finder.first_head(text)  # (asked once: the scan below starts there)
        if head == -1:  # the usual prose: nothing can begin in it, all of it is decided
            decided = text
        else:
            base = self._ctx
            tail = self._tail + text
            window = base + tail
            fenced = self._fenced(self._text_size - len(window))
            status, at = self._finder.scan_stream(window, len(base), self._ticks, fenced,
                                                  None if head is None else len(base) + head)
            stop = (at if status != NO else len(window)) - len(base)
            if status == MATCH:
                self._holding = True
                self._plain = False
                self._hold_at = self._text_size - (len(tail) - stop)
            decided = tail[:stop]
            self._tail = tail[stop:]
        self._ticks = ticks_after(self._ticks, decided)
        body = decided.rstrip()
        if not body:
            if decided:
                self._ws.append(decided)
                self._ctx = decided[-1]
            return []
        out = "".join(self._ws) + body
        self._ws = [decided[len(body):]] if len(body) < len(decided) else []
        self._ctx = decided[-1]
        if self._new_group:
            self._new_group = False
            out = lead_trim(out)
            if self._emitted:
                out = "\n\n" + out
        self._emitted += len(out)
        return [ContentDelta(out)]

    def _fenced(self, base: int) -> Fenced:
        """Whether a position of the window scanned next, which begins at `base` of the text, lies in a fenced code
        block (for `CandidateFinder.scan_stream`): asked first, the text between the last window's start and this
        one's is read (kept: windows only move on), then the window along a copy (the next one reads it again).
        Each question joined the text before the window and read it from its start: 200 KB of fenced candidate
        lines took seconds."""
        window: list[Fences] = []

        def inside(text: str, p: int) -> bool:
            if not window:
                kept = self._fences
                if kept.at < base:
                    kept.inside(self._text_since(kept.at), base - kept.at, kept.at)
                window.append(dataclasses.replace(kept))
            return window[0].inside(text, p, base)
        return inside

    def feed_reasoning(self, text: str) -> list[Event]:
        """An upstream reasoning_content delta (passed through at once)."""
        self._check_open()
        self._fed_reasoning = True
        if not text:
            return []
        if self._overflowed:
            return [ReasoningDelta(text)]
        self._reasoning.append(text)
        self._reasoning_out.append(text)
        self._size += len(text)  # kept: it counts toward the bound
        if self._max_chars is not None and self._size > self._max_chars:
            return [ReasoningDelta(text), *self._overflow("")]
        return [ReasoningDelta(text)]

    def feed_tool_calls(self, deltas: Sequence[dict[str, Any]]) -> list[Event]:
        """Upstream delta.tool_calls fragments; assembled and repaired at finish() (in incremental mode a call's
        header and arguments also go out as they arrive)."""
        self._check_open()
        events: list[Event] = []
        for d in deltas or []:
            if not isinstance(d, dict):
                continue
            fn = json_object(d.get("function"), {})
            args = fn.get("arguments")
            idx = self._slots.of_delta(d.get("index"), d.get("id"), fn.get("name"),
                                       bool(args) and isinstance(args, (str, dict)), self._args_whole)
            if self._incremental:
                events += self._native_feed(idx, d, fn)
            if self._overflowed:
                continue
            part = self._tool_parts.get(idx)
            if part is None:
                part = self._tool_parts[idx] = _Part()
            if isinstance(d.get("id"), str) and d["id"] and not part.id:
                part.id = d["id"]
            if isinstance(fn.get("name"), str):
                part.name = name_with(part.name, fn["name"])
            if isinstance(args, str):
                part.add(args)
                self._size += len(args)
            elif isinstance(args, dict):
                part.pieces, part.obj, part.has_args = [], args, True
        if self._max_chars is not None and self._size > self._max_chars and not self._overflowed:
            events += self._overflow("")
        return events

    def _args_whole(self, idx: int) -> bool:
        """Whether call `idx`'s arguments so far are a whole JSON value (see `CallSlots.of_delta`)."""
        part = self._tool_parts.get(idx)
        if part is None or part.obj is not None:
            return True
        return whole_json(part.pieces)

    def call_at(self, index: object) -> tuple[int | None, str] | None:
        """The call an upstream delta at `index` (not an int: one without) that names no other call belongs to:
        its index in the answer once its header went out (else None) and its id there (its upstream's until
        then; "" while it has none). None before any call."""
        found = self._slots.continued(index)
        if found is None:
            return None
        nat = self._native.get(found[0])
        started = nat.started if nat is not None else None
        return (started.index, started.id) if started is not None else (None, found[1])

    def feed_arguments(self, index: int, text: str) -> list[Event]:
        """`feed_tool_calls([{"index": index, "function": {"arguments": text}}])` (the usual fragment of a
        structured call's arguments), without looking the delta over."""
        self._check_open()
        events: list[Event] = []
        index = self._slots.of_arguments(index)
        if self._incremental:
            nat = self._native.get(index)
            if nat is None:
                nat = self._native[index] = _Native(index)
            if text and not nat.stopped:
                events = self._native_args(nat, text, self._tool_parts.get(index))
        if self._overflowed:
            return events
        part = self._tool_parts.get(index)
        if part is None:
            part = self._tool_parts[index] = _Part()
        if part.obj is None:  # the usual: one more piece (`_Part.add` without the call)
            part.pieces.append(text)
            part.has_args = True
        else:
            part.add(text)
        self._size += len(text)
        if self._max_chars is not None and self._size > self._max_chars:
            events += self._overflow("")
        return events

    # --- output ------------------------------------------------------------------------------------------------

    def finish(self) -> list[Event]:
        """Flush: the rest of the content, reasoning found in the text, and the final calls."""
        self._check_open()
        if self._overflowed:
            return self._finish_overflowed()
        full = "".join(self._chunks)
        upstream_calls = None
        if self._tool_parts:
            for idx, nat in self._native.items():  # a call whose header went out keeps the id it went out with (an
                if nat.started is not None and idx in self._tool_parts:  # id that came later, or one another call
                    self._tool_parts[idx].id = nat.started.id  # had, made it another call: sent twice)
            upstream_calls = []
            for idx in sorted(self._tool_parts):
                part = self._tool_parts[idx]
                fn: dict[str, Any] = {"name": part.name}
                if part.has_args:
                    fn["arguments"] = part.obj if part.obj is not None else "".join(part.pieces)
                call: dict[str, Any] = {"type": "function", "function": fn}
                if part.id:
                    call["id"] = part.id
                upstream_calls.append(call)
        upstream_reasoning = "".join(self._reasoning) if self._fed_reasoning else None
        opts = self._opts
        if self._incremental:
            # a text call's header went out with the id its position gets (a native call's part has its id)
            assigned = {st.index: st.id for st in self._started if not st.native}
            # the arguments as the pieces streamed add up to them (canonical_arguments), decoded once
            opts = {**opts, "id_factory": lambda k: assigned.get(k) or self._make_id(k), "canonical": True}
            if assigned:  # a text call went out before any structured call began (none can start after it): the
                # text's calls come first, as the client got them (parallel_tool_calls false keeps the one it got)
                opts["text_calls_first"] = True
        result = None
        if self._plain and not self._tail:  # no candidate begins in the text (see `_plain_result`)
            if upstream_calls is None:  # (nor a call in the upstream's reasoning: `repair_message` reads it then)
                if self._choice_kind in ("auto", "none") and not (
                        upstream_reasoning and self._index and self._inner_finder.may_contain(upstream_reasoning)):
                    result = _plain_result(full if self._fed else None, upstream_reasoning)
            else:
                result = self._clean_calls(full if self._fed else None, upstream_reasoning, opts["id_factory"])
        if result is None:
            result = repair_message(full if self._fed else None, self._index, tool_calls=upstream_calls,
                                    reasoning_content=upstream_reasoning, **opts)
        self._result = result
        events: list[Event] = []  # reasoning first: a think block held to the end came before its answer
        reasoning = result.reasoning_content or ""
        sent = "".join(self._reasoning_out)
        if reasoning.startswith(sent):
            if len(reasoning) > len(sent):
                events.append(ReasoningDelta(reasoning[len(sent):]))
        else:
            self.after_header.append(RepairIssue("stream_diverged", "the reasoning streamed differs from the "
                                                 "repaired reasoning"))
        content = result.content or ""
        rest = content[self._emitted:]  # content starts with the text already emitted (see the module docstring)
        if rest:
            events.append(ContentDelta(rest))
        if not self._incremental:
            for i, c in enumerate(result.tool_calls):
                events.append(ToolCallDelta(i, c["id"], c["function"]["name"], c["function"]["arguments"]))
            return events
        # the started calls' rest first: a client that writes a call as a block it closes when other output
        # begins (Anthropic's tool_use, a Responses function_call item) gets each call's arguments whole
        started, fresh = self._finish_calls(result.tool_calls)
        return started + events + fresh

    def _clean_calls(self, text: str | None, reasoning: str | None,
                     make_id: Callable[[int], str] | None) -> RepairResult | None:
        """`repair_message`'s result for a text in which no candidate begins and upstream calls that need no
        repair: each names a declared tool exactly and its arguments are strict JSON for an object that validates
        as it is, and tool_choice and parallel_tool_calls keep them all. None when any of that does not hold (the
        one-shot repair decides then). What it skips: segmenting the text, which gives the text itself (as in
        `_plain_result`), and the attempt bookkeeping; every call is still decoded and validated."""
        index, kind, parts = self._index, self._choice_kind, self._tool_parts
        if not index or kind == "none" or self._opts["mode"] != "repair" or (not self._parallel and len(parts) > 1):
            return None
        make_id = make_id or _default_id
        calls: list[dict[str, Any]] = []
        used: set[str] = set()
        for idx in sorted(parts):
            part = parts[idx]
            name = part.name
            if part.obj is not None or not part.has_args or index.resolve(name) != name \
                    or self._choice.refused(name) is not None:
                return None
            tool = index.get(name)
            tool.validator()
            wire = "".join(part.pieces)
            got = salvage.loads(wire) if wire.strip() and not tool.schema_notes else None
            if type(got) is not salvage.Decoded or got.repairs or type(got.value) is not dict:
                return None
            args, coerced, error = tool.conform(got.value)
            if coerced or error is not None:
                return None
            call_id = fresh_id(part.id, used, len(calls), make_id, self._taken)
            arguments = _canonical(args, wire) if self._incremental else wire
            calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        return RepairResult(content=text or None, tool_calls=calls, reasoning_content=reasoning or None, repairs=[],
                            errors=[], format=None)

    def _finish_calls(self, calls: list[dict[str, Any]]) -> tuple[list[Event], list[Event]]:
        """The rest of each started call (or its completion and a report when it failed after its header); and
        the calls that were not started, whole. The result's calls become the ones the client got, in its order
        and under the ids their headers went out with."""
        started = self._started
        match: dict[int, int] = {}  # started call (its index) -> its final call
        taken: set[int] = set()
        by_id = {c["id"]: i for i, c in enumerate(calls)}  # by id: calls may have started in another order
        sent = ["".join(st.sent) for st in started]

        def continues(i: int, st: _Started) -> bool:
            fn = calls[i]["function"]
            return bool(fn["name"] == st.name and fn["arguments"].startswith(sent[st.index]))

        for st in started:
            i = by_id.get(st.id)
            if i is not None and i not in taken and continues(i, st):
                match[st.index] = i
                taken.add(i)
        for st in started:  # a text call's id is its position's, which the final answer may give another call:
            if st.index in match or st.native:  # the first call left is its own when it continues what went out
                continue  # (a later one is another call, written after it: completed as this one, it went out
            # ahead of the calls before it)
            i = next((j for j in range(len(calls)) if j not in taken), None)
            if i is not None and continues(i, st):
                match[st.index] = i
                taken.add(i)
        # the call attempts the one-shot repair did not make, by ordinal: text calls start in the text's order, each
        # block one attempt, from the first (a block after one that sent nothing starts none), so a started text
        # call whose attempt failed has no repaired form; the call its id went to is another one, written later
        failed = {e.call_index for e in self._result.errors} if self._result is not None else set()
        events: list[Event] = []
        differs: dict[int, int] = {}  # started call -> the final call of its id, repaired otherwise (not sent again)
        for st in started:
            i = match.get(st.index)
            if i is not None:
                args = calls[i]["function"]["arguments"]
                if len(args) > len(sent[st.index]):
                    events.append(ToolArgsDelta(st.index, args[len(sent[st.index]):]))
                continue
            i = by_id.get(st.id)
            same = i is not None and i not in taken and calls[i]["function"]["name"] == st.name \
                and (st.native or st.index not in failed)
            if same and i is not None:
                differs[st.index] = i
                taken.add(i)
            # what went out stays as it is: never closed into a call the model did not make (arguments that stop
            # short of their end are not JSON, which agents refuse to run; closed they were a call of their own, its
            # later members dropped or a command cut in half)
            if self._cut(st):  # the model did not finish them
                why = CUT
            else:
                why = "its arguments differ from the repaired call" if same else \
                    "it is not part of the repaired answer"
                if not st.emitter.closed:
                    why += UNCLOSED
            self.after_header.append(RepairIssue("failed_after_header", f"{st.name}: {why}", st.index))
        out: list[dict[str, Any]] = []  # the calls as the client got them
        for st in started:
            i = match.get(st.index, differs.get(st.index))
            if i is not None:
                out.append(calls[i] if calls[i]["id"] == st.id else {**calls[i], "id": st.id})
        used = {st.id for st in started}
        fresh: list[Event] = []
        k = len(started)
        for i, c in enumerate(calls):
            if i in taken:
                continue
            if c["id"] in used:  # the id of a header that went out for another call
                c = {**c, "id": fresh_id(None, used, k, self._make_id)}
            used.add(c["id"])
            out.append(c)
            fresh.append(ToolCallDelta(k, c["id"], c["function"]["name"], c["function"]["arguments"]))
            k += 1
        result = self._result
        if result is not None and out != result.tool_calls:
            self._result = dataclasses.replace(result, tool_calls=out)
        return events, fresh

    def _cut(self, st: _Started, spec: _Think | _Hermes | None = None) -> bool:
        """Whether started call `st`'s arguments were cut: the stream ended (the token limit, a stop string, the
        upstream's end) while they were still open, strict JSON so far (not broken by what followed)."""
        if st.emitter.closed or st.emitter.broken:
            return False
        if st.native:
            return any(nat.started is st and not nat.stopped for nat in self._native.values())
        spec = spec if spec is not None else self._spec
        return isinstance(spec, _Hermes) and spec.state == _OBJ and spec.call is not None \
            and spec.call.started is st

    # --- incremental mode --------------------------------------------------------------------------------------

    def _may_start(self, name: str) -> bool:
        """Whether a call to `name` found now will be part of the answer if its arguments validate."""
        if self._choice_kind == "none" or self._overflowed:
            return False
        if self._choice.refused(name) is not None:
            return False
        return self._parallel or not self._started

    def _start(self, upstream_id: Any, name: str, emitter: ArgsEmitter | None = None) -> tuple[_Started, Event]:
        k = len(self._started)
        used = {st.id for st in self._started}
        cid = upstream_id if isinstance(upstream_id, str) and upstream_id and upstream_id not in used \
            and upstream_id not in self._taken else None
        if cid is None:
            cid = self._make_id(k)
        st = _Started(k, cid, name, emitter if emitter is not None else ArgsEmitter(self._index.get(name)))
        self._started.append(st)
        return st, ToolCallStart(k, cid, name)

    def _text_since(self, start: int) -> str:
        """The text fed from `start` on (only the pieces that hold it are joined)."""
        parts: list[str] = []
        size = self._text_size
        for chunk in reversed(self._chunks):
            if size <= start:
                break
            parts.append(chunk)
            size -= len(chunk)
        return "".join(reversed(parts))[start - size:]

    def _maybe_spec(self, held: str) -> list[Event]:
        """Held text (all of it, from where it is held) that can stream anyway: a channel marker the one-shot
        repair removes (Kimi K3's response and message markers, Functionary's `>>>all`: dropped, what follows is
        content again), a <think> block (as reasoning) or hermes calls (header and arguments)."""
        events: list[Event] = []
        while self._incremental and self._holding and self._spec is None and not self._spec_tried:
            marker = next((m for m in DROPPED if held.startswith(m)), None)
            if marker is None or not self._room():
                return events + self._try_spec(held)
            self._limits.handlers -= 1
            events += self._drop(marker, held[len(marker):])
            held = self._tail
        return events

    def _room(self) -> bool:
        """Whether the one-shot repair still examines a candidate here (past its bounds the rest is text as it is:
        held then, for the finish)."""
        return self._limits.handlers > 0 and self._limits.calls > 0

    def _drop(self, marker: str, rest: str) -> list[Event]:
        """Held `marker` (then `rest`) removed as `repair_message` removes it: the whitespace before it goes, the
        text after it is a new paragraph, read on from the marker's end (no line starts there)."""
        self._holding, self._tail, self._ws, self._new_group = False, "", [], True
        self._ticks = ticks_after(self._ticks, marker)
        self._ctx = marker[-1]
        return self._prose(rest)

    def _try_spec(self, held: str) -> list[Event]:
        openers = (HERMES_OPEN, *(opener for opener, _, _ in STREAMED_THINKS + STREAMED_ANSWERS))
        if any(len(held) < len(marker) and marker.startswith(held) for marker in openers):
            return []  # it may still become one (a `<think>` that came whole is one already)
        self._spec_tried = True
        if not self._room():
            return []
        for opener, close, ends in STREAMED_THINKS:
            if held.startswith(opener):
                self._ws = []
                self._limits.handlers -= 1
                self._spec = _Think(self, close, ends, opener, at=self._text_size - len(held) + len(opener))
                return self._spec_feed(held[len(opener):])
        for opener, close, ends in STREAMED_ANSWERS:
            if held.startswith(opener):
                self._ws = []  # (the paragraph before it ends there: its trailing space goes)
                self._limits.handlers -= 1
                self._spec = _Think(self, close, ends, opener, content=True)
                return self._spec_feed(held[len(opener):])
        if held.startswith(HERMES_OPEN) and not self._tool_parts:
            # (its calls, one block each, within what the one-shot repair still parses)
            cap = min(MAX_CALLS, self._limits.calls, self._limits.handlers)
            self._spec = _Hermes(self, self._text_size - len(held), cap)
            return self._spec_feed(held[len(HERMES_OPEN):])
        return []

    def _inert(self, inner: str) -> bool:
        """Whether the one-shot repair makes the whole text of a <think> block, `inner`, reasoning as it is,
        whatever comes after the block: read as it reads it (the candidates in it, with what is left of the
        message's bounds and json-repair budget, carried here as it spends them), nothing in it is a channel whose
        markup goes, nor calls that may all be made (when none is made outside the block, their markup leaves the
        reasoning): each block of calls holds one that is never made (broken or cut off, naming no declared tool, or
        one the request refuses; one whose arguments may validate is not known before the end)."""
        ctx = Ctx(self._index, self._budget, self._prefer, inner, self._inner_finder, self._inner_finder,
                  self._limits)
        at = 0
        for it in segment(inner, ctx):
            if isinstance(it, Segment):
                if it.kind != "calls" or it.start != at or not any(map(self._never_made, it.calls)):
                    return False
                at = it.end
            elif inner.startswith(it, at):
                at += len(it)
            else:
                return False
        return at == len(inner)

    def _never_made(self, call: RawCall) -> bool:
        """Whether a call read in a <think> block is never made, whatever follows (as `core._process` and the
        request's tool_choice decide it: a call they refuse keeps its markup where it was written)."""
        if self._choice_kind == "none" or call.failure is not None or not self._index:
            return True
        name = call.name
        if not isinstance(name, str) or not name.strip():
            return True
        resolved = self._index.resolve(name)
        return resolved is None or self._choice.refused(resolved) is not None

    def _spec_feed(self, text: str) -> list[Event]:
        """`text` to the streamed form being read. A form that closes hands the rest on (`_maybe_spec`), which may
        open the next one and feed it from inside this call: that feed, always the last thing its callers do, waits
        here instead, and the forms are read one after another (hundreds of blocks in one delta went one call level
        deeper each, to a RecursionError)."""
        if self._spec_feeding:
            self._spec_next = text
            return []
        self._spec_feeding = True
        try:
            events = self._spec_step(text)
            while self._spec_next is not None:
                text, self._spec_next = self._spec_next, None
                events += self._spec_step(text)
        finally:
            self._spec_feeding, self._spec_next = False, None
        return events

    def _spec_step(self, text: str) -> list[Event]:
        assert self._spec is not None
        events, action, rest = self._spec.feed(text)
        if action == "stop":
            if isinstance(self._spec, _Think) and not self._overflowed:  # what it took before `rest` went out
                self._sent_to = self._text_size - len(rest)
            self._spec = None
            if self._overflowed and rest:
                events += self._passthrough(rest)
        elif action == "resume":  # a <think> block closed: what follows is content again
            assert isinstance(self._spec, _Think)
            self._ctx, self._ticks = self._spec.after  # (see `_Think.after`)
            if self._spec.ends is None and not self._overflowed:  # a <think> block's content begins a line, a
                # fence's too (as one-shot; past the bound the text is no longer kept, nor read for calls)
                at, kept = self._text_size - len(rest), self._fences
                if kept.at <= at:
                    kept.line_start(self._text_since(kept.at), at - kept.at, kept.at)
            self._spec, self._spec_tried = None, False
            self._holding, self._tail, self._ws = False, "", []
            self._new_group = True
            if self._overflowed:
                return events + (self._passthrough(rest) if rest else [])
            events += self._prose(rest)
            events += self._maybe_spec(self._tail)
        return events

    def _native_feed(self, idx: int, d: dict[str, Any], fn: dict[str, Any]) -> list[Event]:
        nat = self._native.get(idx)
        if nat is None:
            nat = self._native[idx] = _Native(idx)
        if isinstance(d.get("id"), str) and d["id"] and not nat.id:
            nat.id = d["id"]
        if isinstance(fn.get("name"), str) and nat.started is None and nat.pending is None:
            nat.name = name_with(nat.name, fn["name"])
        args = fn.get("arguments")
        if not isinstance(args, str) or not args or nat.stopped:
            return []
        return self._native_args(nat, args, self._tool_parts.get(idx))

    def _native_args(self, nat: _Native, args: str, part: _Part | None = None) -> list[Event]:
        """A non-empty argument fragment of a call that has not stopped: its header once the call can start,
        then the fragment as far as it validates. A fragment that is the arguments so far (`part`'s pieces) and
        the rest, whole, is the final flush some servers send (see `salvage.loads`): only its rest is new."""
        events: list[Event] = []
        if part is not None and part.pieces and args[0] in "{[" and part.obj is None and nat.flush_checks < 8 \
                and args.startswith(part.pieces[0]):
            nat.flush_checks += 1  # (bounded: each check joins the pieces)
            so_far = "".join(part.pieces)
            if len(args) > len(so_far) and args.startswith(so_far) and whole_json([args]):
                args = args[len(so_far):]
        if nat.started is None:
            return self._native_pending(nat, args)
        st = nat.started
        if string_run(nat.json, st.emitter, args):  # the usual piece, inside a string value: out as it came
            st.sent.append(args)
            events.append(ToolArgsDelta(st.index, args))
            return events
        try:
            piece = st.emitter.feed(nat.json.feed(args))
        except JsonBroken:
            nat.stopped = True
            return events
        if piece:
            st.sent.append(piece)
            events.append(ToolArgsDelta(st.index, piece))
        return events

    def _native_pending(self, nat: _Native, args: str) -> list[Event]:
        """Arguments of a call whose header has not gone out: it goes out with the first of their members whose
        value begins as JSON (a string's quote) or is whole (a number or literal followed by a comma or the closing
        bracket), or with their end (see `_Envelope._pending`); arguments that break before that start no call."""
        if nat.pending is None:
            if not args.strip() and not nat.seen_args:
                return []
            nat.seen_args = True
            name = self._index.resolve(nat.name)
            if name is None or not self._native_may_start(name):
                nat.stopped = True
                return []
            nat.pending, nat.pending_name = ArgsEmitter(self._index.get(name)), name
        try:
            text = nat.pending_text + nat.pending.feed(nat.json.feed(args))
        except JsonBroken:
            nat.stopped = True
            return []
        if text in ("", "{") or any(o.started is None for o in self._native.values() if o.slot < nat.slot):
            # (nor before an earlier call of the upstream's: the headers go out in its order, which the whole
            # answer keeps; one that never starts, its arguments broken early, comes whole at the end, and so do
            # the calls after it)
            nat.pending_text = text
            return []
        if not self._native_may_start(nat.pending_name):
            nat.stopped = True
            return []
        st, ev = self._start(nat.id, nat.pending_name, nat.pending)
        nat.started, nat.pending, nat.pending_text = st, None, ""
        st.native = True
        st.sent.append(text)
        return [ev, ToolArgsDelta(st.index, text)]

    def _native_may_start(self, name: str) -> bool:
        return self._may_start(name) and not any(st.native is False for st in self._started)

    # --- the bound -----------------------------------------------------------------------------------------------

    def _overflow(self, text: str) -> list[Event]:
        """Past `max_chars`: nothing more is kept; held text and everything after it go out unrepaired."""
        self._overflowed = True
        spec = self._spec
        first = not any(st.native is False for st in self._started)  # no block has sent a call
        if isinstance(spec, _Hermes) and (spec.unsent or first):  # the blocks read so far that sent nothing (from
            # the first, when none did: blocks no call went out for, `tool_choice: none`), with `text`, as they came
            held, self._spec = "".join(self._chunks)[spec.first_at if first else spec.block_at:], None
            if first:
                held, self._ws = "".join(self._ws) + held, []
            self._chunks, self._reasoning, self._tool_parts = [], [], {}
            self._holding = False
            return self._passthrough(held)
        held = "".join(self._chunks)[max(self._hold_at, self._sent_to):] if self._holding else ""
        if isinstance(spec, _Think) and spec.hold_at is not None:  # a <think> block held from a candidate on: no
            back = self._text_since(spec.hold_at)  # call can start now, it goes on as reasoning (`text` below)
            spec.release(back[:len(back) - len(text)])
        self._chunks, self._reasoning, self._tool_parts = [], [], {}
        events: list[Event] = []
        if spec is not None:
            events += self._spec_feed(text)
        elif self._holding:
            events += self._passthrough("".join(self._ws) + held)
            self._ws, self._holding = [], False
        else:
            events += self._prose(text)
            events += self._passthrough("".join(self._ws) + self._tail)
            self._ws, self._tail = [], ""
        return events

    def _passthrough(self, text: str) -> list[Event]:
        if self._spec is not None:
            return self._spec_feed(text)
        if not text:
            return []
        self._emitted += len(text)
        return [ContentDelta(text)]

    def _finish_overflowed(self) -> list[Event]:
        events: list[Event] = []
        spec, self._spec = self._spec, None
        if isinstance(spec, _Think) and spec.pending:  # what it held back in case a </think> followed
            events += spec.out(spec.pending)
        elif isinstance(spec, _Hermes) and spec.state == _BETWEEN and spec.lit:  # the start of a block, no more
            events.append(ContentDelta(spec.lit))
        calls = []
        for st in self._started:
            if self._cut(st, spec):
                self.after_header.append(RepairIssue("failed_after_header", f"{st.name}: {CUT}", st.index))
            elif not st.emitter.closed:  # what went out stays as it went out (see `_finish_calls`)
                self.after_header.append(RepairIssue(
                    "failed_after_header", f"{st.name}: its arguments did not end{UNCLOSED}", st.index))
            calls.append({"id": st.id, "type": "function", "function": {"name": st.name, "arguments": ""}})
        limit = self._max_chars
        self._result = RepairResult(content=None, tool_calls=calls, reasoning_content=None, repairs=[],
                                    errors=[RepairIssue("unrepaired", f"the stream passed the repair bound of "
                                                                      f"{limit} characters; the rest went "
                                                                      "through unrepaired")], format=None)
        return events

    @property
    def result(self) -> RepairResult:
        """The final result; available after finish()."""
        if self._result is None:
            raise RuntimeError("StreamRepairer.result is available after finish()")
        return self._result

    def _check_open(self) -> None:
        if self._result is not None:
            raise RuntimeError("the stream is finished")


def _plain_result(text: str | None, reasoning: str | None) -> RepairResult:
    """`repair_message(text, ..., reasoning_content=reasoning)` for a text in which no candidate begins: no scan
    found a complete one and none is left that may still complete (all of the text was decided, and `_prose`
    decides only text in which the one-shot repair's `find`, the scan's own, finds nothing), no upstream calls
    and a tool_choice that asks for none: the text is the content and nothing is reported."""
    return RepairResult(content=text, tool_calls=[], reasoning_content=reasoning or None, repairs=[], errors=[],
                        format=None)


# --- speculation over held text ------------------------------------------------------------------------------------

class _Started:
    """A call whose header went out: its emitter and the argument text sent so far."""

    __slots__ = ("emitter", "id", "index", "name", "native", "sent")

    def __init__(self, index: int, call_id: str, name: str, emitter: ArgsEmitter) -> None:
        self.index = index
        self.id = call_id
        self.name = name
        self.emitter = emitter
        self.sent: list[str] = []
        self.native = False


class _Part:
    """One upstream structured call as its deltas add up: id, name and the argument text's pieces (joined once, at
    the end: no copy of the whole text per piece), or an arguments object an upstream sent as one."""

    __slots__ = ("has_args", "id", "name", "obj", "pieces")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.pieces: list[str] = []
        self.obj: dict[str, Any] | None = None
        self.has_args = False

    def add(self, text: str) -> None:
        if self.obj is not None:  # text after an object: the text starts over (as an object replaces text)
            self.obj = None
        self.pieces.append(text)
        self.has_args = True


class _Native:
    """One upstream structured call being assembled."""

    __slots__ = ("flush_checks", "id", "json", "name", "pending", "pending_name", "pending_text", "seen_args",
                 "slot", "started", "stopped")

    def __init__(self, slot: int) -> None:
        self.slot = slot  # its place among the upstream's calls
        self.id: str | None = None
        self.name = ""
        self.json = JsonEvents()
        self.started: _Started | None = None
        self.pending: ArgsEmitter | None = None  # the arguments' emitter before the header goes out
        self.pending_name = ""
        self.pending_text = ""  # what it gave so far
        self.stopped = False
        self.seen_args = False
        self.flush_checks = 0  # final-flush checks made (see `StreamRepairer._native_args`)


Action = tuple[list[Event], str | None, str]  # (events, "stop" | "resume" | None, text left over)


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that begins `marker`."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-k:]):
            return k
    return 0


class _Think:
    """A <think> block streamed as reasoning: the text the one-shot path makes reasoning of (stripped; blocks
    joined by blank lines) goes out as it arrives; its close hands the rest back as content. From a call candidate
    inside it on, the block is held until its close, and read then as the one-shot repair reads it: when nothing in
    it can change its text (`StreamRepairer._inert`: tag text that is no call, a call never made) the rest goes out
    and the block ends as one without a candidate; else the rest is resolved at finish. With `content`, a channel
    whose text is content (`STREAMED_ANSWERS`): the text the one-shot path makes a paragraph of (`lead_trim`med,
    its end's space dropped, a blank line before it when content went out before) goes out as content."""

    def __init__(self, owner: StreamRepairer, close: str = THINK_CLOSE, ends: tuple[str, ...] | None = None,
                 opener: str = THINK_OPEN, content: bool = False, at: int = 0) -> None:
        self.owner = owner
        self.close = close
        self.ends = ends  # None: a <think> block (see `STREAMED_THINKS`)
        self.content = content
        self.at = at  # where a <think> block's text begins in the owner's text
        self.hold_at: int | None = None  # where the candidate it is held from begins (a <think> block's)
        self.pending = ""
        self.ctx = ""
        self.ticks = LINE_START  # backticks on the line before `pending` (the block's text from its start: as the
        self.ws = ""      # one-shot repair reads it, apart)
        self.started = False
        # the owner's backticks after the block: a <think> block's content begins a line and is read apart; after
        # another format's channel the one-shot repair reads on through the channel's text (tracked as it goes)
        self.outer = LINE_START if ends is None else ticks_after(owner._ticks, opener)
        self.after = ("\n", LINE_START)  # (the character before the content after the block, its backticks)

    def _emit(self, decided: str) -> list[Event]:
        body = decided.rstrip()
        if not body:
            self.ws += decided  # (before the text begins too: a paragraph keeps its first line's indentation)
            return []
        out = self.ws + body
        self.ws = decided[len(body):]
        if not self.started:
            self.started = True
            out = lead_trim(out) if self.content else out.lstrip()
            if self.owner._emitted if self.content else self.owner._reasoning_out:
                out = "\n\n" + out
        return self.out(out)

    def out(self, text: str) -> list[Event]:
        """`text` out as the block's kind of text."""
        if self.content:
            self.owner._emitted += len(text)
            return [ContentDelta(text)]
        self.owner._reasoning_out.append(text)
        return [ReasoningDelta(text)]

    def feed(self, text: str) -> Action:
        """`text` ends where the owner's text so far ends, until the owner passes its bound."""
        if self.ends is not None:
            return self._feed_channel(self.pending + text)
        window = self.pending + text
        close = window.find(self.close)
        if self.hold_at is not None:  # (the owner's bound not passed: see `release`)
            if close < 0:
                self.pending = window[len(window) - _partial_suffix(window, self.close):]
                return [], None, ""
            return self._resolve([], window, close)
        finder = self.owner._inner_finder
        free = self.owner._overflowed  # past the bound no call can start: candidates are reasoning like the rest
        if close >= 0:
            inner = self.ctx + window[:close]
            hit = None if free else finder.find(inner, len(self.ctx), self.ticks)
            if hit is not None:
                self.hold_at = self.owner._text_size - len(window) + hit[0] - len(self.ctx)
                return self._resolve(self._emit(inner[len(self.ctx):hit[0]]), window, close)
            events = self._emit(window[:close])
            return events, "resume", window[close + len(self.close):]
        status, at = (NO, 0) if free else finder.scan_stream(self.ctx + window, len(self.ctx), self.ticks)
        at -= len(self.ctx)
        if status == MATCH:
            self.hold_at = self.owner._text_size - len(window) + at
            self.pending = window[len(window) - _partial_suffix(window, self.close):]
            return self._emit(window[:at]), None, ""
        stop = min(at if status == PARTIAL else len(window), len(window) - _partial_suffix(window, self.close))
        decided, self.pending = window[:stop], window[stop:]
        if decided:
            self.ctx = decided[-1]
            self.ticks = ticks_after(self.ticks, decided)
        return self._emit(decided), None, ""

    def _resolve(self, events: list[Event], window: str, close: int) -> Action:
        """The block closed at `close` of `window` (which ends where the owner's text ends), held from `hold_at`:
        the rest goes out and the block ends when the one-shot repair keeps all of its text as it is, else
        everything from the candidate on is the owner's, for the finish (the rest: only its length counts)."""
        assert self.hold_at is not None
        owner = self.owner
        start = owner._text_size - len(window)  # where `window` begins in the owner's text
        inner = owner._text_since(self.at)[:start + close - self.at]
        if not owner._inert(inner):
            return events, "stop", owner._text_since(self.hold_at)
        events += self._emit(inner[self.hold_at - self.at:])
        self.hold_at = None
        return events, "resume", window[close + len(self.close):]

    def release(self, held: str) -> None:
        """Past the owner's bound, what it held from the candidate on (`held`, up to the text that passed the bound)
        goes on as reasoning, read again from there."""
        self.hold_at, self.pending = None, held

    def _feed_channel(self, window: str) -> Action:
        """A channel the format reads no markup in: it goes out up to its close (then the rest is content) or up to
        where one of its `ends` opens (the rest is then held and resolved at finish, as after a candidate)."""
        assert self.ends is not None
        close = window.find(self.close)
        free = self.owner._overflowed
        end = -1 if free else min((at for m in self.ends if (at := window.find(m)) != -1), default=-1)
        if close >= 0 and (end < 0 or close < end):
            closed = close + len(self.close)
            self.after = self.close[-1], ticks_after(self.outer, window, 0, closed)
            return self._emit(window[:close]), "resume", window[closed:]
        if end >= 0:
            return self._emit(window[:end]), "stop", window[end:]
        keep = max(_partial_suffix(window, m) for m in (self.close, *(() if free else self.ends)))
        decided, self.pending = window[:len(window) - keep], window[len(window) - keep:]
        self.outer = ticks_after(self.outer, decided)
        return self._emit(decided), None, ""


_PRE, _OBJ, _POST, _BETWEEN = range(4)


class _Hermes:
    """`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` calls, one after another: each call's header
    goes out once its name resolves and its arguments begin, the arguments as they arrive."""

    def __init__(self, owner: StreamRepairer, block_at: int, cap: int = MAX_CALLS) -> None:
        self.owner = owner
        self.cap = cap  # the blocks it may read (the calls the one-shot repair parses: one a block)
        self.blocks = 1
        self.state = _PRE
        self.lit = ""
        self.json: JsonEvents | None = None
        self.call: _Envelope | None = None
        self.block_at = block_at  # where the block being read begins (its `<tool_call>`) in the owner's text
        self.first_at = block_at  # and where the first one began
        self.ticks = owner._ticks, block_at  # the backticks of the line before a block (as the owner read them:
        # from a think block's end), and where

    @property
    def unsent(self) -> bool:
        """Whether the block being read has sent nothing (its call's header has not gone out)."""
        return self.state != _BETWEEN and (self.call is None or self.call.started is None)

    def feed(self, text: str) -> Action:
        """`text` ends where the owner's text so far ends (`owner._text_size`), until the owner passes its
        bound."""
        events: list[Event] = []
        i, n = 0, len(text)
        while i < n:
            if self.state == _BETWEEN and self.owner._overflowed:  # no more calls: the rest as it came
                return events, "stop", self.lit + text[i:]
            if self.state == _PRE:
                c = text[i]
                if c in " \t\r\n":
                    i += 1
                    continue
                if c != "{":
                    return events, "stop", text[i:]
                self.json, self.call, self.state = JsonEvents(), _Envelope(self.owner), _OBJ
            elif self.state == _OBJ:
                assert self.json is not None and self.call is not None
                try:
                    evs = self.json.feed(text[i:])
                except JsonBroken:
                    return events, "stop", ""
                events += self.call.events(evs)
                if not self.json.done:
                    return events, None, ""
                i += self.json.rest_at
                self.state, self.lit = _POST, ""
            else:
                c = text[i]
                i += 1
                if not self.lit and c in " \t\r\n":
                    continue
                target = HERMES_CLOSE if self.state == _POST else HERMES_OPEN
                self.lit += c
                if not target.startswith(self.lit):
                    return events, "stop", text[i - len(self.lit):] if len(self.lit) <= i else text[i - 1:]
                if self.lit == target:
                    if self.state == _BETWEEN:  # another block begins
                        self.block_at = self.owner._text_size - (n - i) - len(HERMES_OPEN)
                        # the block before it sent no call (a form read only at the finish: arguments under
                        # `args`, a JSON string) that the one-shot repair may still make, before this one: a call
                        # started here would go out first, under the first call's index and id; in inline code
                        # (backticks in the calls before it on its line), or past the calls one message may hold
                        # (the one-shot repair leaves the rest as text): all left to the finish
                        unsent = self.call is None or self.call.started is None
                        self.call = None
                        if unsent or self.blocks >= self.cap or self._quoted():
                            return events, "stop", ""
                        self.blocks += 1
                    self.state, self.lit = (_BETWEEN if self.state == _POST else _PRE), ""
        return events, None, ""

    def _quoted(self) -> bool:
        """Whether the block now beginning is in inline code, as the one-shot repair reads the text (carried from
        block to block, only the text since the last block read: all of it joined and read again for each, a line
        of many blocks took quadratic time)."""
        ticks, at = self.ticks
        ticks = ticks_after(ticks, self.owner._text_since(at), 0, self.block_at - at)
        self.ticks = ticks, self.block_at
        return in_code(ticks)


class _Envelope:
    """The events of one hermes call object: its "name", then its "arguments" (or "parameters")."""

    def __init__(self, owner: StreamRepairer) -> None:
        self.owner = owner
        self.depth = 0
        self.key: str | None = None
        self.mode: str | None = None  # "name" | "args" | "skip"
        self.sub = 0  # nesting inside the member being read
        self.name: list[str] = []
        self.resolved: str | None = None
        self.started: _Started | None = None
        self.pending: ArgsEmitter | None = None  # the arguments' emitter before the header goes out
        self.pending_text = ""  # what it gave so far
        self.done_args = False

    def events(self, evs: list[tuple[Any, ...]]) -> list[Event]:
        out: list[Event] = []
        for ev in evs:
            kind = ev[0]
            if self.mode is not None:
                opens = kind in (OBJ, _ARR)
                if self.mode == "args" and self.started is not None:
                    piece = self.started.emitter.feed([ev])
                    if piece:
                        self.started.sent.append(piece)
                        out.append(ToolArgsDelta(self.started.index, piece))
                elif self.mode == "args" and self.pending is not None:
                    self._pending(ev, out)
                elif self.mode == "name":
                    if kind == _CHARS:
                        self.name.append(ev[1])
                    elif kind == END_STR:
                        self.resolved = self.owner._index.resolve("".join(self.name))
                if opens:
                    self.sub += 1
                elif kind in (END_OBJ, END_ARR):
                    self.sub -= 1
                if self.sub == 0 and kind not in (STR, _CHARS):
                    self.mode = None
                continue
            if self.depth == 0:
                if kind == OBJ:
                    self.depth = 1
                continue
            if kind == KEY:
                self.key = ev[1]
                continue
            if kind == END_OBJ:
                self.depth = 0
                continue
            # a member's value begins
            self.mode, self.sub = "skip", 0
            if self.key == "name" and kind == STR and self.resolved is None and not self.name:
                self.mode = "name"
            elif self.key in ("arguments", "parameters") and not self.done_args:
                self.done_args = True
                name = self.resolved
                if kind == OBJ and name is not None and self._may_start(name):
                    self.mode = "args"
                    self.pending = ArgsEmitter(self.owner._index.get(name))
                    self._pending(ev, out)
            if kind in (OBJ, _ARR):
                self.sub = 1
            elif kind != STR:
                self.mode = None
        return out

    def _may_start(self, name: str) -> bool:
        return self.owner._may_start(name) and not any(st.native for st in self.owner._started)

    def _pending(self, ev: tuple[Any, ...], out: list[Event]) -> None:
        """The arguments before the header went out: it goes out with the first of their members whose value
        begins as JSON (a string's quote) or is whole (a number or literal followed by a comma or the closing
        bracket), or with their end; arguments that break before that (`{"query": 2024 election results}`,
        unquoted text) start no call, and the stream gives what the one-shot repair gives."""
        pending = self.pending
        assert pending is not None and self.resolved is not None
        self.pending_text += pending.feed([ev])
        if self.pending_text == "{" or not self.pending_text:
            return
        self.pending, text = None, self.pending_text
        if not self._may_start(self.resolved):
            self.mode = "skip"
            return
        self.started, start = self.owner._start(None, self.resolved, pending)
        self.started.sent.append(text)
        out += [start, ToolArgsDelta(self.started.index, text)]
