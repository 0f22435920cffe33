"""What the dialect translators share: ids, SSE framing, argument decoding, request checks."""

from __future__ import annotations

import base64
import binascii
import json
import math
import operator
import os
import re
import sys
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar, cast

import json_repair

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; without it nothing is kept encoded
    orjson = None  # type: ignore[assignment]

from engines import wire
from repair.incremental import JsonBroken, JsonEvents
from repair.index_cache import MAX_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES, Bounds
from repair.slots import CallSlots, whole_json

from .. import jsoncodec
from ..chat_types import StreamChunk, ToolFragment, TranslatedMessages, chunk_items, content_text
from ..errors import ApiError

T = TypeVar("T")
_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_ID_CHARS = 256  # the longest id a client may send back (ours are under 40)


spaced_json = json.JSONEncoder(ensure_ascii=False).encode
"""`json.dumps(value, ensure_ascii=False)` (the standard library's spacing: what the model has always been shown
for a call's arguments in the history) without building an encoder per call."""


def sse_event(name: str, data: object) -> bytes:
    """One named SSE event (`event:` line plus one compact JSON `data:` line), encoded by `jsoncodec` (the
    standard library's compact text, several times faster)."""
    return b"event: " + name.encode() + b"\ndata: " + jsoncodec.dumps(data) + b"\n\n"


def shown_value(value: object) -> str:
    """A value a client sent as an error message shows it: a string cut to 40 characters, an object or an array by
    its JSON type (either may be megabytes)."""
    if isinstance(value, str):
        return repr(value[:40])
    return wire.json_type(value) if isinstance(value, (dict, list)) else repr(value)


def new_id(prefix: str) -> str:
    return f"{prefix}{os.urandom(12).hex()}"


def safe_id(value: object, prefix: str) -> str:
    """`value` as an id made of [A-Za-z0-9_-] carrying `prefix` (a fresh id when empty)."""
    text = _ID_SAFE.sub("_", value) if isinstance(value, str) else ""
    if not text:
        return new_id(prefix)
    return text if text.startswith(prefix) else prefix + text


def arguments_object(arguments: object) -> dict[str, Any]:
    """A tool call's JSON-string arguments as an object. Repaired calls are valid already; strict JSON cut off keeps
    its whole top-level members; anything else is decoded leniently and a non-object becomes `{}`."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        if cut_json(arguments):  # cut off: its whole members only (the one the cut left open is not guessed at)
            whole = WholeMembers().feed(arguments) if arguments.lstrip().startswith("{") else ""
            return cast(dict[str, Any], json.loads(whole + "}")) if whole.strip() else {}
        try:
            value = json_repair.loads(arguments)
        except (ValueError, RecursionError):  # pragma: no cover - json_repair is lenient
            value = None
    return value if isinstance(value, dict) else {}


def cut_json(text: str) -> bool:
    """Whether `text` is strict JSON cut off: the start of a value that never ended (a call's arguments cut by the
    token limit, a stop string or the upstream's end). Such arguments go out as they are: closing them would invent
    the end of a call the model did not finish (a command or a file cut in half is another one)."""
    events = JsonEvents()
    try:
        events.feed(text)
    except JsonBroken:
        return False
    return not events.done and bool(text.strip())


def estimate_tokens(text_bytes: int) -> int:
    """The byte-level heuristic: about four UTF-8 bytes per token."""
    return max(1, math.ceil(text_bytes / 4)) if text_bytes else 0


def invalid(message: str, param: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, code, param=param)


class UncodedError(ApiError):
    """An error OpenAI answers with `code: null`: its `code` names it in the router's logs and metrics only."""

    def openai_body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": None}}


def check_type(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str,
               required: bool = False) -> Any:
    """`body[name]` when it has the right type (bools are never numbers); raises a 400 otherwise (the check the
    engine worker makes too: `engines.wire.check_type`)."""
    value = body.get(name)
    if value is None and not required:  # (most of the fields a dialect looks at are absent)
        return None
    if type(value) is kind:  # (what the check would pass as it is: a bool only where booleans are asked for)
        return value
    try:
        return wire.check_type(body, name, kind, what, required)
    except wire.WireError as err:
        raise ApiError.of(err) from None


def check_number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value: float | None = check_type(body, name, (int, float), "a number")
    # an integer is compared as one (math.isfinite raises OverflowError on one too big for a float)
    if value is not None and not ((isinstance(value, int) or math.isfinite(value)) and lo <= value <= hi):
        raise invalid(f"'{name}' must be between {lo} and {hi}, got {value}.", name, "invalid_value")
    return value


def check_int(body: dict[str, Any], name: str, lo: int, required: bool = False) -> int | None:
    value: int | None = check_type(body, name, int, "an integer", required=required)
    if value is not None and value < lo:
        raise invalid(f"'{name}' must be at least {lo}, got {value}.", name, "invalid_value")
    return value


# --- what every inbound dialect does to the chat messages it built ----------------------------------------------

def place_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """System (and developer) messages where every chat template accepts them: those that come before the
    model's first reply are merged, in order, into one system message at the start; a later one becomes a user
    message (many local templates refuse a system message anywhere but first)."""
    first_reply = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
    system: list[str] = []
    rest: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if m.get("role") not in ("system", "developer"):
            rest.append(m)
            continue
        text = content_text(m.get("content"))
        if i < first_reply:
            if text:
                system.append(text)
        elif text:
            rest.append({"role": "user", "content": text})
    return ([{"role": "system", "content": "\n\n".join(system)}] if system else []) + rest


IMAGE_PLACEHOLDER = "[image omitted: this model cannot view images]"


def without_images(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The messages with every image part replaced by a short text placeholder (for backends that take text only),
    and how many were replaced. A translated history stays one (its call ids are its own still), and is given
    back as it is when it holds no image part."""
    translated = type(messages) is TranslatedMessages
    if translated and not cast(TranslatedMessages, messages).images:
        return messages, 0
    count = 0
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, list) or not any(isinstance(p, dict) and p.get("type") == "image_url"
                                                    for p in content):
            out.append(m)
            continue
        texts = []
        for p in content:
            if isinstance(p, dict) and p.get("type") == "image_url":
                count += 1
                texts.append(IMAGE_PLACEHOLDER)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                texts.append(p["text"])
        out.append({**m, "content": "\n".join(texts)})
    return (TranslatedMessages(out, cast(TranslatedMessages, messages).ids, False) if translated else out), count


def file_text(filename: str, media_type: str, data: str | None) -> str:
    """What the model reads for an attached file: a text file's content when it decodes, else a placeholder
    naming what was omitted (backends behind the chat form cannot read binary files such as PDFs)."""
    label = filename or "file"
    textual = media_type.startswith("text/") or media_type in ("application/json", "application/xml")
    if data is not None and textual:
        try:
            return f"{label}:\n{base64.b64decode(data, validate=True).decode()}"
        except (binascii.Error, ValueError):
            pass
    return f"[file omitted: {label} ({media_type or 'unknown type'}); this backend cannot read it]"


def data_url_parts(url: str) -> tuple[str, str | None]:
    """(media type, base64 payload) of a `data:` URL; ("", None) for anything else."""
    if not url.startswith("data:"):
        return "", None
    head, _, payload = url[5:].partition(",")
    media, _, enc = head.partition(";")
    return media, payload if enc == "base64" else None


@dataclass
class Dropped:
    """What an inbound translation left out because no backend behind the chat form can run it (hosted and
    server tools, their calls in the history): reported in `x-agentgate-dropped-tools` and the access log."""

    kinds: list[str] = field(default_factory=list)
    more: int = 0  # distinct kinds past `MAX_DROPPED_KINDS`, counted only

    def add(self, kind: str) -> None:
        """A kind is the client's text: kept as printable ASCII (anything else, the separator and a space included,
        as '?') and at most `MAX_DROPPED_KIND_CHARS` characters, so that the header can always be written and
        read; repeating it is harmless (the same text again)."""
        shown = "".join(c if "!" <= c <= "~" and c != "," else "?" for c in kind[:MAX_DROPPED_KIND_CHARS])
        if len(kind) > MAX_DROPPED_KIND_CHARS:
            shown += "..."
        if shown in self.kinds:
            return
        if len(self.kinds) < MAX_DROPPED_KINDS:
            self.kinds.append(shown)
        else:
            self.more += 1

    def header(self) -> dict[str, str]:
        """The kinds, sorted, as long as they fit in `MAX_DROPPED_HEADER_CHARS`; the rest as a count."""
        if not self.kinds:
            return {}
        value, left = "", self.more
        for i, kind in enumerate(sorted(self.kinds)):
            if len(value) + len(kind) + 1 > MAX_DROPPED_HEADER_CHARS:
                left += len(self.kinds) - i
                break
            value = f"{value},{kind}" if value else kind
        if left:
            value = f"{value},+{left} more" if value else f"+{left} more"
        return {DROPPED_HEADER: value}


DROPPED_HEADER = "x-agentgate-dropped-tools"
MAX_DROPPED_KIND_CHARS = 64
MAX_DROPPED_KINDS = 32  # distinct kinds kept (for the header and the access log); more are counted
MAX_DROPPED_HEADER_CHARS = 256  # the header's kinds; a count of those that did not fit follows


class ChunkEncoder(ABC):
    """Chunk documents in, one dialect's SSE events out. `feed` unpacks each chunk once and hands its parts to
    the dialect's hooks; the usage, finish reason and stop-string hint seen last are kept for `finish`."""

    def __init__(self) -> None:
        self._usage: dict[str, Any] | None = None
        self._finish: str | None = None
        self._hint: str | None = None
        self._pending_ws = ""  # leading whitespace of a text block, held until real text arrives
        self._calls: set[int] = set()  # the chat tool-call indexes seen
        self._open_call: int | None = None  # the call whose block is open (the dialect's close resets it)
        self._nameless: dict[int, tuple[ToolFragment, list[str]]] = {}  # calls whose name has not come yet
        self._nameless_size = 0  # their arguments' characters, and NAMELESS_WEIGHT for each (bound: RAW_ARGS_MAX)
        self._slots = CallSlots()  # which call each unrepaired tool-call delta continues
        self._args: dict[int, list[str]] = {}  # each call's arguments so far (up to RAW_ARGS_MAX in all: past
        self._args_size = 0                    # it, a call's arguments are taken not to be whole)
        self._waiting: dict[int, tuple[ToolFragment, list[str]]] = {}  # calls begun while the open call's
        # arguments were still coming (an upstream interleaving parallel calls): a block cannot reopen
        self._queue: list[tuple[str, Any]] = []  # what waits for the open call's arguments to be whole, in order:
        # ("call", index) of `_waiting`, ("text", str), ("reasoning", str), ("refusal", str)
        self._queued = 0  # characters of text, reasoning and call arguments waiting there
        self._high = ""  # the open call's arguments' last high surrogate (a character or its escape), held for its pair
        self._unrepaired = False  # calls come as the upstream's own deltas (a stream nothing repairs)

    @abstractmethod
    def _start(self) -> list[bytes]: ...

    @abstractmethod
    def _reasoning(self, text: str) -> list[bytes]: ...

    @abstractmethod
    def _text(self, text: str) -> list[bytes]: ...

    @abstractmethod
    def _refusal(self, text: str) -> list[bytes]:
        """Refusal text (OpenAI's `delta.refusal`: the model declined)."""

    def _write(self, kind: str, text: str) -> list[bytes]:
        return self._text(text) if kind == "text" else self._reasoning(text) if kind == "reasoning" \
            else self._refusal(text)

    @abstractmethod
    def _call_start(self, call: ToolFragment) -> list[bytes]:
        """Opens the block of a new call (closing the open one)."""

    @abstractmethod
    def _call_args(self, index: int, text: str) -> list[bytes]:
        """More argument text for the open call."""

    def _args_out(self, index: int, text: str) -> list[bytes]:
        """`_call_args`, a high surrogate at the end of `text` held until the call's next piece (or its block's
        end: `_args_rest`): a pair cut between two pieces went out as two lone surrogates, which the anthropic SDK
        cannot encode (UnicodeEncodeError) and which a client joining the pieces kept as two characters."""
        if self._high:
            text, self._high = self._high + text, ""
        cut = high_surrogate_tail(text)
        if cut:
            text, self._high = text[:-cut], text[-cut:]
        return self._call_args(index, text) if text else []

    def _args_rest(self) -> list[bytes]:
        """What `_args_out` held of the open call's arguments, before its block closes."""
        if not self._high or self._open_call is None:
            self._high = ""
            return []
        text, self._high = self._high, ""
        return self._call_args(self._open_call, text)

    def _held(self, text: str) -> str | None:
        """`text` preceded by the whitespace held back so far, or None while it is all whitespace (a
        whitespace-only text block is not valid input for a later turn, so none is opened for it)."""
        if not text.strip():  # (what is held is whitespace: not joined again to be looked at)
            self._pending_ws += text
            return None
        text, self._pending_ws = self._pending_ws + text, ""
        return text

    def _tool(self, call: ToolFragment) -> list[bytes]:
        out: list[bytes] = []
        if call.index not in self._calls:
            held = self._nameless.get(call.index)
            if held is not None or not call.name:  # a block opens with its name: until it comes, the call waits
                first, args = held if held is not None else (call, [])
                if call.arguments:
                    args.append(call.arguments)
                if not call.name:
                    return self._wait_for_name(call, first, args, held is None)
                del self._nameless[call.index]
                self._nameless_size -= NAMELESS_WEIGHT + sum(map(len, args)) - len(call.arguments)
                call = ToolFragment(call.index, first.id or call.id, call.name, "".join(args))
            return self._open_new_call(call)
        if self._open_call != call.index:
            return out  # a fragment for a block already closed cannot be placed; repaired calls arrive whole
        if call.arguments:
            out += self._args_out(call.index, call.arguments)
        return out

    def _wait_for_name(self, call: ToolFragment, first: ToolFragment, args: list[str], new: bool) -> list[bytes]:
        """A fragment of a call whose name has not come: it waits, unless what waits passes RAW_ARGS_MAX (then
        every waiting call opens as it is, without a name, as at the stream's end)."""
        self._nameless[call.index] = (first, args)
        self._nameless_size += len(call.arguments) + (NAMELESS_WEIGHT if new else 0)
        if self._nameless_size <= RAW_ARGS_MAX:
            return []
        return self._open_nameless()

    def _open_nameless(self) -> list[bytes]:
        """The calls whose name never came, opened as they are."""
        out: list[bytes] = []
        for index, (first, args) in self._nameless.items():
            out += self._open_new_call(ToolFragment(index, first.id, "", "".join(args)))
        self._nameless.clear()
        self._nameless_size = 0
        return out

    def _open_new_call(self, call: ToolFragment) -> list[bytes]:
        """A new call's block, with the arguments its fragment carries. Past MAX_STREAM_CALLS calls the stream
        ends (`response_too_large`): each call keeps a few records until the end (its index, id, block or item)."""
        if len(self._calls) >= MAX_STREAM_CALLS:
            raise ApiError(502, f"The response made more than {MAX_STREAM_CALLS} tool calls, the most one stream "
                           "carries.", "response_too_large")
        self._pending_ws = ""
        out = self._call_start(call)
        self._calls.add(call.index)
        self._open_call = call.index
        if call.arguments:
            out += self._args_out(call.index, call.arguments)
        return out

    def _note_args(self, index: int, text: str) -> None:
        if self._args_size <= RAW_ARGS_MAX:
            self._args_size += len(text)
            self._args.setdefault(index, []).append(text)

    def _holding(self) -> bool:
        """Whether the open call's block must stay open: its arguments are not whole yet (another block would
        close it, and its later fragments could then go nowhere). Not past RAW_ARGS_MAX of arguments and text
        waiting: what waits is bounded, and past that, output goes on as it comes."""
        return self._open_call is not None and self._args_size + self._queued <= RAW_ARGS_MAX \
            and not self._args_whole(self._open_call)

    def _placed(self, call: ToolFragment) -> list[bytes]:
        """A fragment of call `call.index`; a new call's header waits while something waits or `_holding`."""
        if call.arguments:
            self._note_args(call.index, call.arguments)
        waiting = self._waiting.get(call.index)
        if waiting is not None:
            if call.arguments:
                waiting[1].append(call.arguments)
                self._queued += len(call.arguments)
                if self._args_size + self._queued > RAW_ARGS_MAX:  # past the bound nothing waits
                    return self._released(at_end=True)
            return []
        if call.index in self._calls or not call.name:  # a fragment of a call whose block opened: written first
            out = self._tool(call)  # (it may be what completes the open call's arguments)
            return out + self._released() if self._queue else out
        out = self._released() if self._queue else []  # a new call's header
        if self._queue or self._holding():
            self._waiting[call.index] = (call, [call.arguments] if call.arguments else [])
            self._queue.append(("call", call.index))
            return out
        out += self._tool(call)
        return out + self._released() if self._queue else out

    def _said(self, kind: str, text: str) -> list[bytes]:
        """Text, reasoning or a refusal: written, or queued while something waits or `_holding`."""
        if self._open_call is None and not self._queue:  # the usual
            return self._text(text) if kind == "text" else self._write(kind, text)
        out = self._released() if self._queue else []
        if self._queue or self._holding():
            self._queue.append((kind, text))
            self._queued += len(text)
            return out
        return out + self._write(kind, text)

    def _released(self, at_end: bool = False) -> list[bytes]:
        """What waited, in order, while nothing holds it (at the end, or on an error: all of it)."""
        out: list[bytes] = []
        while self._queue and (at_end or not self._holding()):
            kind, value = self._queue.pop(0)
            if kind == "call":
                first, args = self._waiting.pop(value)
                out += self._tool(ToolFragment(value, first.id, first.name, "".join(args)))
            else:
                out += self._write(kind, value)
        if not self._queue:
            self._queued = 0
        return out

    def _released_before_error(self) -> list[bytes]:
        """What waited, before a terminal error event; none of it when writing it fails too (a Response past its
        bound): the error event must still go out."""
        try:
            return self._released(at_end=True)
        except ApiError:
            self._queue.clear()
            self._waiting.clear()
            self._queued = 0
            return []

    def _nameless_calls(self) -> list[bytes]:
        """At the end: what waited, then the calls whose name never came, opened as they are (a stream not
        repaired)."""
        return self._released(at_end=True) + self._open_nameless()

    def feed(self, doc: dict[str, Any] | StreamChunk) -> list[bytes]:
        out = self._start()
        if type(doc) is StreamChunk:
            delta = doc.delta
            if len(delta) == 1:  # most of a stream: one more piece of text, reasoning or the open call's arguments
                text = delta.get("content")
                if type(text) is str:
                    return out + self._said("text", text) if text else out
                text = delta.get("reasoning_content")
                if type(text) is str:
                    return out + self._said("reasoning", text) if text else out
            if self._open_call is not None:
                text = args_only(delta, self._open_call)
                if text:
                    self._note_args(self._open_call, text)
                    out += self._args_out(self._open_call, text)
                    return out + self._released() if self._queue else out
        return self._feed_parts(doc, out)

    def _feed_parts(self, doc: dict[str, Any] | StreamChunk, out: list[bytes]) -> list[bytes]:
        chunk = chunk_items(doc)
        if chunk.usage is not None:
            self._usage = chunk.usage
        for part in chunk.parts:
            if part.reasoning:
                out += self._said("reasoning", part.reasoning)
            if part.content:
                out += self._said("text", part.content)
            if part.refusal:
                out += self._said("refusal", part.refusal)
            if part.tool_deltas and type(doc) is StreamChunk:  # the pipeline's: one index per call already
                for call in part.tool_calls:
                    out += self._placed(call)
            elif part.tool_deltas:
                self._unrepaired = True
                slots = self._slots
                for call, raw in zip(part.tool_calls, part.tool_deltas, strict=True):
                    # an upstream's, unrepaired: by call, not by index (parallel calls may all say index 0)
                    fn = raw.get("function")
                    slot = slots.of_delta(raw.get("index"), raw.get("id"), fn.get("name") if isinstance(fn, dict)
                                          else None, bool(call.arguments), self._args_whole)
                    out += self._placed(call if slot == call.index else ToolFragment(slot, call.id, call.name,
                                                                                     call.arguments))
            if part.finish_reason:
                self._finish, self._hint = part.finish_reason, part.stop_reason
        return out


    def _args_whole(self, call: int) -> bool:
        return self._args_size <= RAW_ARGS_MAX and whole_json(self._args.get(call, []))


def high_surrogate_tail(text: str) -> int:
    """How many characters at the end of `text` are a UTF-16 high surrogate whose low half may come next: the
    character itself (1), or JSON's escape of one (6: a backslash that no backslash escapes, "u", D800-DBFF)."""
    last = text[-1:]
    if "\ud800" <= last <= "\udbff":
        return 1
    if len(text) < 6 or text[-6] != "\\" or text[-5] != "u" or text[-4] not in "dD" or text[-3] not in "89abAB" \
            or text[-2] not in _HEX or last not in _HEX:
        return 0
    k = len(text) - 7
    while k >= 0 and text[k] == "\\":
        k -= 1
    return 6 if (len(text) - 7 - k) % 2 == 0 else 0


_HEX = frozenset("0123456789abcdefABCDEF")
RAW_ARGS_MAX = 1 << 20  # characters of unrepaired call arguments a translated stream keeps to tell calls apart
MAX_STREAM_CALLS = 4096  # the upstream's own calls one translated stream opens (a repaired one makes at most
# repair's MAX_CALLS)
NAMELESS_WEIGHT = 256  # what a call waiting for its name counts toward RAW_ARGS_MAX besides its arguments


def args_only(delta: dict[str, Any], call: int) -> str | None:
    """The argument text of a pipeline delta that carries nothing but more arguments of call `call`
    (`{"tool_calls": [{"index": call, "function": {"arguments": text}}]}`), or None."""
    if len(delta) != 1:
        return None
    calls = delta.get("tool_calls")
    if type(calls) is not list or len(calls) != 1:
        return None
    one = calls[0]
    if type(one) is not dict or len(one) != 2 or type(one.get("index")) is not int or one["index"] != call:
        return None
    fn = one.get("function")
    if type(fn) is not dict or len(fn) != 1:
        return None
    text = fn.get("arguments")
    return text if type(text) is str else None


# --- translated tools lists, once per distinct list ----------------------------------------------------------------

@dataclass(slots=True)
class _Memo:
    value: Any
    size: int  # bytes counted against the bound
    source: list[Any]  # the list found by identity (one `KnownTools` hands to every request sending its bytes)
    offered: bool = False  # a request's list was offered for learning by its bytes (once)


class ToolsMemo(Bounds, Generic[T]):
    """What a dialect made of a client's tools list (its chat tools, what it reports), kept for the requests that
    send the same list again: a coding agent resends an identical 20-60 KB list on every turn, and translating and
    measuring it was a fifth of such a request. Keyed by the list's compact encoding, or found by identity when the
    request's list is the very one it was made from (`KnownTools` hands the same parsed list to every request that
    sends its bytes); bounded in entries and bytes, least recently used out; a list over `max_entry_bytes` (or one
    `jsoncodec` cannot encode) is translated for its request only, so a client sending a new list every time
    cannot grow it. What it holds is shared by every request that sends the list: read-only."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        super().__init__(max_entries, max_bytes, max_entry_bytes)
        self._entries: OrderedDict[bytes, _Memo] = OrderedDict()
        self._by_id: dict[int, bytes] = {}  # id() of an entry's source list (held by the entry: ids stay unique)
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, tools: list[Any]) -> bytes | None:
        """The key of `tools`, or None when it is not to be kept."""
        try:
            data = jsoncodec.dumps(tools)
        except (UnicodeEncodeError, ValueError, TypeError):
            return None
        return data if len(data) <= self.max_entry_bytes else None

    def get(self, tools: list[Any], make: Callable[[list[Any]], T], size: Callable[[T], int]) -> tuple[T, bool]:
        """What `make` makes of `tools` (kept: `size` says how many bytes it holds besides the key), and whether
        `tools` is to be learned by its bytes now (see `api.translated.learn_tools`): the second time a list
        comes, once (a list sent once is never learned; one that cannot be is not tried again). The list offered
        becomes the one found by identity."""
        key = self._by_id.get(id(tools))
        entry = self._entries.get(key) if key is not None else None
        if entry is None or entry.source is not tools:
            key = self.key(tools)
            entry = self._entries.get(key) if key is not None else None
        if key is None or entry is None:
            self.misses += 1
            value = make(tools)
            if key is not None:
                self._put(key, _Memo(value, len(key) + size(value), tools))
            return value, False
        self._entries.move_to_end(key)
        self.hits += 1
        offer = entry.source is not tools and not entry.offered
        if offer:
            self._by_id.pop(id(entry.source), None)
            entry.source, entry.offered = tools, True
            self._by_id[id(tools)] = key
        return cast(T, entry.value), offer

    def _put(self, key: bytes, entry: _Memo) -> None:
        self._entries[key] = entry
        self._by_id[id(entry.source)] = key
        self.bytes += entry.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._by_id.pop(id(old.source), None)
            self.bytes -= old.size


@dataclass(frozen=True)
class ToolsJson:
    """A chat tools list and its `jsoncodec` encoding (put into the chat body's bytes as they are)."""

    tools: list[dict[str, Any]]
    data: bytes

    @classmethod
    def of(cls, tools: list[dict[str, Any]]) -> ToolsJson | None:
        if not tools:
            return None
        try:
            return cls(tools, jsoncodec.dumps(tools))
        except (UnicodeEncodeError, ValueError, TypeError):
            return None


def chat_bytes(chat: dict[str, Any], tools: ToolsJson | None, history: HistoryMemo | None = None) -> bytes:
    """`jsoncodec.dumps(chat)`, made with the encodings kept for its parts: `chat["tools"]` from `tools` when it
    holds that very list, and each message `history` translated (and holds still). b"" when there is nothing to
    save (the chat body is then encoded where it is sent), and when the chat carries a tools list that is not the
    kept one (a Responses `allowed_tools` choice narrows it)."""
    has_tools = tools is not None and chat.get("tools") is tools.tools
    if "tools" in chat and not has_tools:
        return b""
    messages = chat.get("messages")
    whole = _run_json(messages, history) if history is not None else None
    kept = [history.json_of(m) for m in messages] if whole is None and history is not None \
        and isinstance(messages, list) else []
    found = whole is not None or any(k is not None for k in kept)
    if not has_tools and not found:
        return b""
    parts: dict[str, Any] = {}
    if has_tools:
        assert tools is not None
        parts["tools"] = tools.data
    if whole is not None:
        parts["messages"] = whole
    elif found:
        assert isinstance(messages, list)
        parts["messages"] = [m if k is None else Fragment(k) for m, k in zip(messages, kept, strict=True)]
    return spliced(chat, parts)


def _run_json(messages: object, history: HistoryMemo) -> list[Any] | None:
    """A translated history's messages as `Fragment`s of their encodings, those it shares with its kept run (the
    same objects, after a first message of its own at most: the request's system message, which may stand for the
    run's first messages, a Responses input's leading developer messages folded into it) the run's (`_Run.encoded`:
    made once), each other one's looked up (or left as it is); None where that cannot be (the history is not a
    kept run's, or a message of the run cannot be encoded)."""
    if Fragment is None or not isinstance(messages, TranslatedMessages) or not isinstance(ids := messages.ids, RunIds) \
            or not messages:
        return None
    base = ids.run.messages
    if not base:
        return None
    offset = skip = 0
    if messages[0] is not base[0]:
        offset = 1
        if len(messages) < 2:
            return None
        skip = next((k for k in range(min(len(base), _FOLDED + 1)) if base[k] is messages[1]), -1)
        if skip < 0:
            return None
    shared = _shared(base[skip:] if skip else base, messages[offset:])
    encoded = ids.run.encoded
    for m in base[len(encoded):skip + shared]:
        data = history.json_of(m)
        if data is None:  # (not held by the memo: its own copy, of exactly its size, see `_compact`)
            data = _orjson_bytes(m)
            if data is None:
                return None
            data = _compact(data)
        encoded.append(Fragment(data))
    own = [m if (data := history.json_of(m)) is None else Fragment(data)
           for m in (*messages[:offset], *messages[offset + shared:])]  # (one of its own encoded with the body)
    return [*own[:offset], *encoded[skip:skip + shared], *own[offset:]]


_FOLDED = 4  # the run's first messages a request's own system message may stand for (see `_run_json`)


Fragment: Any = getattr(orjson, "Fragment", None)  # orjson >= 3.9: bytes put in as they are


def spliced(doc: dict[str, Any], parts: dict[str, Any]) -> bytes:
    """`jsoncodec.dumps(doc)` with some of its members' encodings already made: `parts` maps a member to its
    bytes (or to a value holding `Fragment`s of them) put in as they are. b"" where `doc` cannot be encoded."""
    if Fragment is not None:
        try:
            return bytes(orjson.dumps({**doc, **{k: Fragment(v) if isinstance(v, bytes) else v
                                                 for k, v in parts.items()}}))
        except TypeError:  # orjson.JSONEncodeError included: the standard library's way, without the parts
            pass
    try:
        return jsoncodec.dumps(doc)
    except (UnicodeEncodeError, ValueError, TypeError):
        return b""


# --- translated history, once per distinct message ------------------------------------------------------------------

HISTORY_ENTRIES = 4096  # messages: a few long conversations' worth
HISTORY_BYTES = 32 << 20  # counted as held: the key and encodings (exact-size copies), the parsed source message
# and the translation (`parsed_bytes`: never under what they hold)


@dataclass(frozen=True, slots=True)
class Turn:
    """What a dialect made of one message of a client's history: its chat messages, and what they add to the
    request's counts."""

    messages: tuple[dict[str, Any], ...]
    text_bytes: int = 0
    images: int = 0
    dropped: tuple[str, ...] = ()
    kind: str = ""  # how a dialect places it (Responses: "tool", "message", "call", "reasoning" or "skip")
    extra: tuple[dict[str, Any], ...] = ()  # a dialect's other pieces (Responses: the call; a tool's images; the
    # reasoning's text)
    loads: tuple[str, ...] = ()  # the deferred tools it loads (Messages: `tool_reference` blocks)
    ids: tuple[str, ...] = ()  # its tool ids (Messages: `tool_use` ids of an assistant's, `tool_result` ids of a
    # user's), for the pairing check
    call_ids: tuple[str, ...] = ()  # the tool-call ids its chat messages hold (see `chat_types.HistoryIds`)


class HistoryMemo(Bounds):
    """The translation of each message of a client's history, kept for the requests that send it again: a coding
    agent resends its whole conversation plus one new turn each time, and translating it was most of a translated
    request's own work. Keyed by the message's compact encoding (orjson: equal bytes are equal JSON values of
    equal types, so the translation is the same), bounded in entries and bytes, least recently used out; a message
    over `max_entry_bytes`, or one orjson cannot encode, is translated for its request only, so a client sending
    new messages cannot grow it. Failures are never kept (a bad message is refused every time). Each translated
    message's encoding is kept too (`json_of`: `chat_bytes` puts it in as it is). The message an entry was last
    found for is found again by identity, without encoding it (the router's `KnownHistory` hands the same parsed
    messages to every request that resends their bytes). What it holds is shared by every request that sends the
    message: read-only."""

    def __init__(self, max_entries: int = HISTORY_ENTRIES, max_bytes: int = HISTORY_BYTES,
                 max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        super().__init__(max_entries, max_bytes, max_entry_bytes)
        self._entries: OrderedDict[bytes, tuple[Turn, int, dict[str, Any]]] = OrderedDict()  # + the last source
        self._json: dict[int, tuple[dict[str, Any], bytes]] = {}  # id() of a kept message -> it, its encoding
        self._sources: dict[int, tuple[dict[str, Any], bytes]] = {}  # id() of an entry's source -> it, the key
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, message: dict[str, Any], make: Callable[[dict[str, Any], int], Turn], at: int) -> Turn:
        """`make(message, at)` (`at`: the message's place, which only an error names), kept."""
        src = self._sources.get(id(message))
        if src is not None and src[0] is message:  # the very message an entry was last found for
            self._entries.move_to_end(src[1])
            self.hits += 1
            return self._entries[src[1]][0]
        key = _orjson_bytes(message)
        if key is None or len(key) > self.max_entry_bytes:
            self.misses += 1
            return make(message, at)
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            turn, size, old_src = hit
            self._sources.pop(id(old_src), None)
            self._entries[key] = (turn, size, message)
            self._sources[id(message)] = (message, key)
            return turn
        self.misses += 1
        turn = make(message, at)
        key = _compact(key)  # orjson's bytes keep its oversized buffer (16 KB for a 2 KB message): kept, a copy
        encoded = [None if (e := _orjson_bytes(m)) is None else _compact(e) for m in turn.messages]
        # what is held: the key, the encodings, the parsed message found by identity (parsed JSON is many times its
        # encoding: 64 bytes for each `{}`) and the translation, which mirrors it (its texts shared, its structure
        # no larger): counted as large again
        size = sys.getsizeof(key) + 2 * parsed_bytes(message, key) + sum(map(sys.getsizeof, filter(None, encoded)))
        self._entries[key] = (turn, size, message)
        self._sources[id(message)] = (message, key)
        self.bytes += size
        for m, e in zip(turn.messages, encoded, strict=True):
            if e is not None:
                self._json[id(m)] = (m, e)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (old, old_size, old_src) = self._entries.popitem(last=False)
            self.bytes -= old_size
            self._sources.pop(id(old_src), None)
            for m in old.messages:
                self._json.pop(id(m), None)
        return turn

    def json_of(self, message: object) -> bytes | None:
        """The encoding of a message this memo holds (it, not an equal one), or None."""
        hit = self._json.get(id(message))
        return hit[1] if hit is not None and hit[0] is message else None

    def held(self, message: object) -> int | None:
        """The bytes this memo counts for `message` when it holds it (it, not an equal one) as an entry's source;
        None when it does not."""
        src = self._sources.get(id(message))
        return self._entries[src[1]][1] if src is not None and src[0] is message else None


# --- a resent history's translation, taken up where its conversation's last request left it ----------------------
# `HistoryMemo` spares translating each message again, but a request still went through its whole history: looked
# up each message, added up its counts, checked its tool pairs, read its call ids. `Conversations` keeps, for the
# last conversations, the translation of each request's history element by element (`Step`: the dialect's running
# state after it), with the client's elements themselves: the next request whose first elements are those very
# objects (the router's `KnownHistory` hands out the same parsed elements to every request that resends their
# bytes) takes the translation up after them, and the call ids its messages hold are known without reading them
# (`RunIds`). Only the same objects are taken as the same: an equal element, a branch or an edited history is
# translated from where it differs, and holds its own ids only.

S = TypeVar("S")
RUNS = 64  # conversations kept
RUNS_PER_FIRST = 4  # of those, beginning with one element (sessions sharing their first message, branches of one)
RUN_BYTES = HISTORY_BYTES  # the bytes `HistoryMemo` counts for the elements runs hold, in all


@dataclass(frozen=True, slots=True, eq=False)
class Step(Generic[S]):
    """A history's translation after one more of its elements: how many chat messages it made so far (`size`),
    the last of them as it stood then (a later element may replace it: Responses joins a call to the assistant
    message before it), the dialect's running state, and the call ids the element's messages hold."""

    size: int
    last: dict[str, Any] | None
    state: S
    ids: tuple[str, ...] = ()
    weight: int = 0  # the bytes held for the element (see RUN_BYTES)


class _Run(Generic[S]):
    """One conversation's translation: the client's elements (held: found again by identity), a step for each,
    the chat messages, and the step where each call id first appears."""

    __slots__ = ("encoded", "first_at", "messages", "sources", "steps", "version", "weight")

    def __init__(self) -> None:
        self.sources: list[Any] = []
        self.steps: list[Step[S]] = []
        self.messages: list[dict[str, Any]] = []
        self.encoded: list[Any] = []  # the `Fragment`s of the first messages' encodings (made as `chat_bytes` needs)
        self.first_at: dict[str, int] = {}
        self.weight = 0
        self.version = 0  # changed whenever the run is

    def cut(self, count: int) -> None:
        """Only the first `count` elements kept (and the encodings of the messages that stay as they are: all but
        the last, which the next element may replace)."""
        self.version += 1
        del self.encoded[max(self.steps[count - 1].size - 1 if count else 0, 0):]
        first_at = self.first_at
        for i in range(count, len(self.steps)):
            self.weight -= self.steps[i].weight
            for call_id in self.steps[i].ids:
                if first_at.get(call_id) == i:
                    del first_at[call_id]
        del self.sources[count:], self.steps[count:]

    def grow(self, sources: list[Any], steps: list[Step[S]], messages: list[dict[str, Any]]) -> None:
        self.version += 1
        first_at = self.first_at
        for i, step in enumerate(steps, len(self.steps)):
            self.weight += step.weight
            for call_id in step.ids:
                first_at.setdefault(call_id, i)
        self.sources += sources
        self.steps += steps
        self.messages = messages


@dataclass(frozen=True, slots=True)
class RunIds:
    """The call ids the messages of a run's first `count` elements hold, while the run still holds those elements
    (`last`: its step for the last of them; another branch of the conversation may have cut it there since)."""

    run: _Run[Any]
    count: int
    last: Step[Any]

    def holds(self, call_id: object) -> bool | None:
        steps = self.run.steps
        if len(steps) < self.count or steps[self.count - 1] is not self.last:
            return None
        at = self.run.first_at.get(call_id) if type(call_id) is str else None
        return at is not None and at < self.count


@dataclass(slots=True)
class Progress(Generic[S]):
    """A history's translation under way: its first `count` elements' taken from a kept run (their chat messages
    in `messages`, `state` after them; None: none), then a step added for each element after them."""

    run: _Run[S] | None
    count: int
    messages: list[dict[str, Any]]
    state: S | None
    steps: list[Step[S]] = field(default_factory=list)
    kept: int | None = None  # the elements a run may keep (None: all; see `add`)
    version: int = 0  # `run`'s when the translation took it up

    def add(self, state: S, ids: tuple[str, ...] = (), weight: int | None = 0) -> None:
        """One more element translated: `state` after it, the call ids its messages hold, the bytes held for it
        (None: too many to hold; a run keeps the elements before it only)."""
        messages = self.messages
        if weight is None and self.kept is None:
            self.kept = self.count + len(self.steps)
        self.steps.append(Step(len(messages), messages[-1] if messages else None, state, ids, weight or 0))
        self.state = state


def _shared(sources: list[Any], items: list[Any]) -> int:
    """How many of `items`' first elements are `sources`' own (the same objects)."""
    n = min(len(sources), len(items))
    for count in (n, n - 1):  # the usual: all, or all but the last (a client moving its cache mark rewrites it)
        if count > 0 and all(map(operator.is_, islice(sources, count), items)):
            return count
    count = 0
    for mine, theirs in zip(sources, items, strict=False):
        if mine is not theirs:
            break
        count += 1
    return count


class Conversations(Generic[S]):
    """The last conversations' translations, element by element (see the section). Bounded in conversations and
    in the bytes of the elements they hold, least recently used out."""

    def __init__(self, max_runs: int = RUNS, max_bytes: int = RUN_BYTES) -> None:
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._by_first: OrderedDict[int, list[_Run[S]]] = OrderedDict()  # id() of a run's first element -> runs
        self.runs = 0
        self.bytes = 0

    def start(self, items: list[Any]) -> Progress[S]:
        """The translation of `items` as far as a kept run holds their first elements."""
        best: _Run[S] | None = None
        count = 0
        for run in self._by_first.get(id(items[0]), ()) if items else ():
            n = _shared(run.sources, items)
            if n > count:
                best, count = run, n
        if best is None:
            return Progress(None, 0, [], None)
        same = self._by_first[id(items[0])]
        if same[0] is not best:  # (the runs of one first element in the order they were last taken up)
            same.remove(best)
            same.insert(0, best)
        step = best.steps[count - 1]
        messages = best.messages[:step.size]
        if step.last is not None:
            messages[-1] = step.last
        return Progress(best, count, messages, step.state, version=best.version)

    def keep(self, items: list[Any], done: Progress[S]) -> RunIds | None:
        """The translation of `items` (`done`, finished) kept; the call ids its messages hold."""
        n = done.count + len(done.steps)
        if n < 2 or n != len(items):  # (one element: a first request, a side request, never taken up)
            return None
        kept = n if done.kept is None else done.kept
        if kept == 0:  # its first element is not held: nothing could ever take a run of it up
            return None
        run = done.run
        if run is not None and run.version != done.version:  # changed since it was taken up (a translation
            return None  # starts and keeps with nothing between: never, but then nothing is kept)
        if run is not None and done.count >= len(run.steps) - 1:  # the same conversation, longer (or its last
            self.bytes -= run.weight                             # element rewritten): the run grows in place
            run.cut(done.count)
            self._by_first.move_to_end(id(items[0]))
        else:  # a new conversation, or a branch of a kept one: a run of its own
            start = run.steps[:done.count] if run is not None else []
            run = _Run()
            run.grow(items[:done.count], start, [])
            self._add(id(items[0]), run)
        run.grow(items[done.count:kept], done.steps[:kept - done.count], done.messages)
        if kept < n:  # the messages of the elements it holds, not those of the unheld one on (uncounted)
            run.messages = run.messages[:run.steps[kept - 1].size]
        self.bytes += run.weight
        self._bound()
        return RunIds(run, n, run.steps[n - 1]) if kept == n else None

    def _add(self, first: int, run: _Run[S]) -> None:
        same = self._by_first.pop(first, [])
        same.insert(0, run)
        self.runs += 1
        while len(same) > RUNS_PER_FIRST:
            self._drop(same.pop())
        self._by_first[first] = same

    def _drop(self, run: _Run[S]) -> None:
        self.runs -= 1
        self.bytes -= run.weight

    def _bound(self) -> None:
        while (self.runs > self.max_runs or self.bytes > self.max_bytes) and self._by_first:
            _, old = self._by_first.popitem(last=False)
            for run in old:
                self._drop(run)


@dataclass(slots=True)
class Memos(Generic[T, S]):
    """A translated dialect's kept translations: its clients' history messages, conversations and tools lists. One
    per app (`state.AppState`), surviving reloads (content-keyed, or by the client's very elements: a translation
    depends on them alone); a dialect given none translates everything for its request only."""

    history: HistoryMemo = field(default_factory=HistoryMemo)
    tools: ToolsMemo[T] = field(default_factory=ToolsMemo)
    conversations: Conversations[S] = field(default_factory=Conversations)


def _compact(data: bytes) -> bytes:
    """A copy of `data` of exactly its size (`bytes(data)` is `data` itself, orjson's oversized allocation)."""
    return bytes(memoryview(data))


def held_bytes(*roots: object) -> int:
    """About the memory `roots` hold: `sys.getsizeof` of each object reachable through dicts, lists and tuples (dict
    keys not counted: short, shared). An object reached twice counts twice: over, never under."""
    size = sys.getsizeof
    total = 0
    todo = list(roots)
    while todo:
        value = todo.pop()
        total += size(value)
        kind = type(value)
        if kind is dict:
            todo += cast(dict[Any, Any], value).values()
        elif kind is list or kind is tuple:
            todo += cast(list[Any], value)
    return total


def parsed_bytes(value: object, data: bytes) -> int:
    """About the memory the parsed JSON `value` (encoded: `data`) holds, never under. Counted in C where that is
    close enough: its length (four times that unless ASCII: a string with one emoji holds 4 bytes a character)
    plus 256 bytes for each `{`, `[` and `,` (what a container or a value costs besides its characters), when
    that is at most 8 KiB or four times the length; else measured (`held_bytes`: many small values, or code in
    its strings, whose brackets and commas are no containers)."""
    n = len(data)
    bound = (n if data.isascii() else 4 * n) + 256 * (data.count(b"{") + data.count(b"[") + data.count(b",") + 1)
    return bound if bound <= _BOUND_NEAR or bound <= 4 * n else held_bytes(value)


_BOUND_NEAR = 8 << 10


def _orjson_bytes(value: object) -> bytes | None:
    if orjson is None:
        return None
    try:
        return bytes(orjson.dumps(value))
    except TypeError:  # orjson.JSONEncodeError included (a lone surrogate, an integer beyond 64 bits)
        return None


_STRING_STOP = re.compile(r'["\\]')
_JSON_WS = frozenset(" \t\r\n")


class WholeMembers:
    """A JSON object's text read piece by piece, given back up to the end of its last whole top-level member (the
    object itself once it closes): what of arguments cut off (the token limit, a stop string) the model did write
    whole; the member the cut left open is not guessed at. Bounded: past RAW_ARGS_MAX characters held, what is held
    and the rest are given back as they come. Reads only the text past what it read before (a string's text a run
    at a time)."""

    __slots__ = ("colon", "depth", "escape", "held", "in_str", "member", "passing", "size")

    def __init__(self) -> None:
        self.depth = 0
        self.in_str = False
        self.escape = False   # a backslash ended the last piece, inside a string
        self.member = False   # a top-level member began (its key) and its value is not complete yet
        self.colon = False    # that member's key is followed by its colon: a string now is its value
        self.held: list[str] = []
        self.size = 0
        self.passing = False  # past the bound, or the object closed: everything goes out as it comes

    def feed(self, text: str) -> str:
        if self.passing:
            return text
        cut = -1  # where the text that may go out ends in `text`
        i, n = 0, len(text)
        if self.escape and n:
            self.escape, i = False, 1
        while i < n:
            if self.in_str:
                m = _STRING_STOP.search(text, i)
                if m is None:
                    break
                j = m.start()
                if text[j] == "\\":
                    if j + 1 == n:
                        self.escape = True
                    i = j + 2
                    continue
                i = j + 1
                self.in_str = False
                if self.depth == 1 and self.colon:  # a top-level string value ended: its member is whole
                    self.member = self.colon = False
                    cut = i
                continue
            c = text[i]
            i += 1
            if c in _JSON_WS:
                continue
            if c == '"':
                self.in_str = True
                if self.depth == 1 and not self.member:
                    self.member = True  # a key
            elif c in "{[":
                self.depth += 1
                if self.depth == 1:
                    cut = i
            elif c in "}]":
                self.depth -= 1
                if self.depth <= 0:  # the object closed: all of it goes out, and what follows
                    self.passing = True
                    cut = n
                    break
                if self.depth == 1 and self.colon:
                    self.member = self.colon = False
                    cut = i
            elif self.depth == 1:
                if c == ":":
                    self.colon = True
                elif c == "," and self.colon:  # after a number or a literal: now it is whole
                    self.member = self.colon = False
                    cut = i - 1
        if cut < 0:
            self.held.append(text)
            self.size += len(text)
            if self.size <= RAW_ARGS_MAX:
                return ""
            self.passing = True
            cut = n
        out = "".join(self.held) + text[:cut] if self.held else text[:cut]
        rest = text[cut:]
        self.held, self.size = ([rest], len(rest)) if rest else ([], 0)
        return out
