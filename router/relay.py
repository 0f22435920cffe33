"""The one reader of upstream streams and the one writer of streamed responses.

`UpstreamReader` is the only place that reads an upstream's event stream: it splits events (each bounded in
size), detects the end (`data: [DONE]` or a `finish_reason`; a stream that stops without either was cut off),
turns an upstream error event, an idle timeout or a reset into one `ApiError`, counts
`agentgate_upstream_errors_total`, trips the breaker, and redacts the provider's key from the decoded text.

`write_stream` is the only writer of a streamed response: it sends what an `Encoder` makes of each item (raw
events for the pass-through, OpenAI chunks, Messages events, Responses events), keeps the connection alive while
nothing was sent for `KEEPALIVE_S` seconds (`: keepalive` comments on OpenAI routes, `event: ping` on Messages),
ends a failed stream with the dialect's one terminal error event, and ends a stream whose client stopped reading
(a write to it that waits `server.idle_timeout` seconds) as a client gone.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, Protocol

import aiohttp
import orjson
from aiohttp import web

from . import jsoncodec
from .chat_types import STREAM_CHUNK_END, ArgsPiece, StreamChunk
from .drain import IN_FLIGHT, uncancel
from .errors import ApiError
from .exchange import Exchange
from .redact import SecretGate, scrub_body, scrub_text, secret_forms
from .sse import DEFAULT_MAX_EVENT_BYTES, EventSplitter, UpstreamTooLarge, error_field, event_data
from .upstream.base import Failure, UpstreamFailed, mid_stream_error

log = logging.getLogger("agentgate")
KEEPALIVE_S = 10.0
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


# --- redaction ---------------------------------------------------------------------------------------------------

class Redactor:
    """Removes the provider's secrets (`Upstream.secrets`) from event payloads, judged on the decoded JSON text (an
    escaped `\\u0073k-...` is the same key; `router.redact` decides). The fast path looks at bytes only: an
    encoding of a secret either holds it literally, holds a JSON escape or a percent-encoding."""

    __slots__ = ("_marker", "_raws", "multiline", "secrets")

    def __init__(self, secrets: str | tuple[str, ...] | None) -> None:
        found = [secrets] if isinstance(secrets, str) else list(secrets or ())
        self.secrets = tuple(sorted({s for s in found if s}, key=len, reverse=True))
        forms = secret_forms(self.secrets)  # their base64 spellings too
        self._raws = tuple(s.encode() for s in forms)
        short = any(c in '"\\/\b\f\n\r\t' for s in forms for c in s)
        self._marker = b"\\" if short else b"\\u"
        self.multiline = any("\n" in s for s in self.secrets)  # could stand in a payload joined from lines

    def suspicious(self, data: bytes) -> bool:
        return bool(self._raws) and (self._marker in data or b"%" in data or any(r in data for r in self._raws))

    def first_suspicious(self, data: bytes) -> int:
        """Where the first bytes `suspicious` looks for stand in `data` (0 when a secret holds a newline: it could
        stand in a payload joined from lines); len(data) when none do."""
        if not self._raws:
            return len(data)
        return 0 if self.multiline else _first_of(data, (self._marker, b"%", *self._raws))

    def text(self, text: str) -> str:
        return scrub_text(text, self.secrets)

    def data(self, data: bytes) -> bytes:
        """A payload with every secret redacted, literal or escaped."""
        return scrub_body(data, self.secrets)


@functools.lru_cache(maxsize=64)
def _redactor(secrets: tuple[str, ...]) -> Redactor:
    """One Redactor per distinct set of secrets (it never changes): made once, not per stream."""
    return Redactor(secrets)


def secrets_of(up: Any) -> tuple[str, ...]:
    secrets = getattr(up, "secrets", None)
    if secrets is None:
        key = up.config.api_key
        return (key,) if key else ()
    return tuple(secrets)


class Opened(Protocol):  # the parts of dispatch.Opened the reader uses
    first: bytes

    @property
    def reply(self) -> Any: ...

    @property
    def upstream(self) -> Any: ...


_FINISH_NULL = (b'"finish_reason":null', b'"finish_reason": null')
_LOOK_AT = (b"[DONE]", b'"error"')  # what makes the reader look at a pass-through payload (and usage, not null)


def _first_of(data: bytes, needles: tuple[bytes, ...]) -> int:
    """Where the first of `needles` stands in `data`; len(data) when none does."""
    first = len(data)
    for needle in needles:
        at = data.find(needle, 0, first)
        if at >= 0:
            first = at
    return first


_FINISH = re.compile(rb'"finish_reason"(?!' + b"|".join(re.escape(n[15:]) for n in _FINISH_NULL) + rb")")  # not null


_USAGE = re.compile(rb'"usage"(?!:null|: null)')  # not null (OpenAI writes `"usage":null` in every chunk before the
# usage chunk when asked for usage, which the chat route always does)


def error_value(payload: bytes) -> Any:
    """What an error event named by its fields (`sse.error_field`) carries: its error object (`{"error": {...}}`'s
    member, or the object itself), else its text."""
    try:
        doc = jsoncodec.loads(payload)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error")
        return err if isinstance(err, (dict, str)) and err else doc or "an error event"
    text = payload.decode("utf-8", "replace").strip()
    return text or "an error event"


FAILED_FINISHES = frozenset({"error", "abort"})  # finish_reasons that say the generation failed: OpenRouter's
# "error" (a provider failed part-way), vLLM's and SGLang's "abort" (the server aborted the request: shutdown,
# preemption); what came before is no whole answer


def finished_with(reason: str) -> str:
    """What a stream that a choice ended with the failed finish_reason `reason` is said to have done."""
    return f"the stream finished with finish_reason {reason!r}"


def failed_finish(choices: Any) -> str | None:
    """The first of `choices`' finish_reasons that says the generation failed (`FAILED_FINISHES`); None when none
    does."""
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and (reason := choice.get("finish_reason")) in FAILED_FINISHES:
                return str(reason)
    return None


def carries_error(doc: dict[str, Any]) -> bool:
    """Whether a chunk document is an upstream error event (`{"error": ...}` without `choices`) or a chunk that
    carries one (OpenRouter: a non-empty `"error": {...}` and `"finish_reason": "error"`): `doc["error"]` is the
    error. (A choice's `"finish_reason": "error"` or `"abort"` alone says so too: `failed_finish`.)"""
    return "error" in doc and ("choices" not in doc or bool(doc["error"]))


def _error_before(before: list[bytes], plain: list[bytes]) -> Any:
    """At a `[DONE]` without a finish_reason: the error of an error event named by its fields (`error: {...}`,
    `event: error`) just before it, among the events passed on unread (the last read's and this one's), which
    llama-server wrote and then `data: [DONE]`; None when there is none (the upstream finished, without saying
    why)."""
    for event in (*before[-4:], *plain):
        if not event.startswith(b"data:") and (err := error_field(event)) is not None:
            return error_value(err)
    return None


def _first_usage(data: bytes, end: int) -> int:
    """Where the first usage that is not null stands in `data[:end]`; `end` when none does (a regex only once the
    key is there at all)."""
    at = data.find(b'"usage"', 0, end)
    if at < 0:
        return end
    m = _USAGE.search(data, at, end + 64)  # (a match starting before `end` ends within 64 bytes of it)
    return end if m is None or m.start() >= end else m.start()


def usage_only(doc: Any) -> bool:
    """Whether a chunk document is the usage-only chunk (`choices: []`) that ends a stream asked for usage."""
    return type(doc) is dict and doc.get("choices") == [] and isinstance(doc.get("usage"), dict)


def _first_finish(data: bytes) -> int:
    """Where the first finish_reason that is not null stands in `data`; len(data) when none does (one search: a
    3.6 KB read of 19 events 4.8 -> 2.3 us against a look at each)."""
    m = _FINISH.search(data)
    return len(data) if m is None else m.start()


_PLAIN_KEYS = frozenset({"id", "object", "created", "model", "system_fingerprint", "service_tier", "choices"})
_PLAIN_CHOICE_KEYS = frozenset({"index", "delta", "finish_reason", "logprobs"})
ENVELOPE_KEYS = ("id", "created", "system_fingerprint", "service_tier")  # what the pipeline takes from every chunk
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: each text matched one way, no branch per byte


class _Plain:
    """The bytes around the one string of a content-only chunk (`{..."choices":[{"index":0,"delta":{"content":` and
    `},"finish_reason":null}]}`) or of an argument-only tool-call chunk (`..."delta":{"tool_calls":[{"index":0,
    "function":{"arguments":` and `}}]},...`), learned from one the upstream sent, and that chunk's envelope
    members. A later payload made of the same bytes around one JSON string is the same chunk with another string:
    the string is all a repairing stream needs from it (see `UpstreamReader.docs`)."""

    __slots__ = ("call", "envelope", "head", "shortest", "start", "tail", "tail_size")

    def __init__(self, head: bytes, tail: bytes, envelope: dict[str, Any], call: int | None) -> None:
        self.head = head
        self.tail = tail
        self.start = len(head)
        self.tail_size = len(tail)
        self.shortest = len(head) + len(tail) + 2
        self.envelope = envelope
        self.call = call  # the tool call's index for an argument template; None for content

    @classmethod
    def learn(cls, data: bytes, doc: dict[str, Any]) -> _Plain | None:
        """The template of `doc` (parsed from `data`) when it is a content-only or argument-only chunk."""
        if not doc.keys() <= _PLAIN_KEYS:
            return None
        choices = doc.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or not choice.keys() <= _PLAIN_CHOICE_KEYS or choice.get("index", 0) != 0 \
                or type(choice.get("index", 0)) is not int or choice.get("finish_reason") is not None \
                or choice.get("logprobs") is not None:
            return None
        delta = choice.get("delta")
        if type(delta) is not dict or len(delta) != 1:
            return None
        call = _argument_only(delta.get("tool_calls"))
        if call is None and type(delta.get("content")) is not str:
            return None
        key = b'"content":' if call is None else b'"arguments":'
        at = data.find(key)  # once: another would be a key outside the delta (inside a string it is escaped)
        if at < 0 or data.find(key, at + 1) >= 0:
            return None
        at += len(key)
        while data[at:at + 1] == b" ":
            at += 1
        m = _JSON_STRING.match(data, at)
        if m is None:
            return None
        return cls(data[:at], data[m.end():], {k: doc[k] for k in ENVELOPE_KEYS if k in doc}, call)

    def item(self, data: bytes) -> str | ArgsPiece | None:
        """What `data` carries when it is this template around one JSON string: the content text, or the
        argument piece."""
        if not data.endswith(self.tail) or len(data) < self.shortest:
            return None
        try:
            text = orjson.loads(data[self.start:len(data) - self.tail_size])
        except ValueError:
            return None
        if type(text) is not str:
            return None
        return text if self.call is None else ArgsPiece(self.call, text)

    def agrees(self, doc: dict[str, Any]) -> bool:
        """Whether `doc` leaves the envelope members the template stands for as they are."""
        for k, v in self.envelope.items():  # noqa: SIM110 - a loop: no generator per document
            if k in doc and (doc[k] != v or type(doc[k]) is not type(v)):
                return False
        return True


def _argument_only(calls: Any) -> int | None:
    """The index of the one tool-call delta in `calls` when it carries only an argument piece."""
    if type(calls) is not list or len(calls) != 1:
        return None
    call = calls[0]
    if type(call) is not dict or call.keys() != {"index", "function"} or type(call["index"]) is not int:
        return None
    fn = call["function"]
    if type(fn) is not dict or fn.keys() != {"arguments"} or type(fn["arguments"]) is not str:
        return None
    index: int = call["index"]
    return index


def _relearn(templates: list[_Plain], data: bytes, doc: dict[str, Any]) -> list[_Plain]:
    """The templates still true after `doc`, with the one learned from it replacing the one of its kind."""
    kept = [t for t in templates if t.agrees(doc)] if templates else templates
    # a template needs its string's key spelled so (see `_Plain.learn`), and a chunk with a "role" or a "name" key
    # (the role chunk, a call's header) is neither kind: passed over at once (learning is only ever a shortcut, so
    # a chunk whose whole text is "role" merely teaches nothing)
    new = _Plain.learn(data, doc) if (b'"content":' in data or b'"arguments":' in data) \
        and b'"role"' not in data and b'"name"' not in data else None
    if new is None:
        return kept
    return [*[t for t in kept if (t.call is None) != (new.call is None)], new]


def _loader(payloads: list[bytes]) -> Callable[[bytes], Any]:
    """orjson's `loads` for a read's payloads when none holds a long integer or a surrogate escape (looked for
    once over them all), else `jsoncodec.loads`."""
    joined = b"\n".join(payloads) if len(payloads) > 1 else payloads[0]  # no digit run or escape spans "\n"
    plain = not (jsoncodec.has_surrogate_escape(joined) or jsoncodec.has_long_int(joined))
    return orjson.loads if plain else jsoncodec.loads


def _continues(prev: Any, item: Any) -> bool:
    """Whether `item` continues `prev`'s run: a text after a text, an argument piece after one of the same call."""
    kind = type(item)
    return kind is type(prev) and (kind is str or (kind is ArgsPiece and prev.call == item.call))


def _joined(items: list[Any]) -> list[Any]:
    """`items` with each run of texts, and of argument pieces of one call, as one: what one upstream read carried
    of them goes on as one delta (the repairer's result does not depend on how its input is cut, and they go to the
    client in one write either way)."""
    out: list[Any] = []
    run: list[str] = []
    for item in items:
        if run and _continues(out[-1], item):
            run.append(item if type(item) is str else item.text)
            continue
        if len(run) > 1:
            out[-1] = _run_item(out[-1], run)
        kind = type(item)
        run = [item] if kind is str else [item.text] if kind is ArgsPiece else []
        out.append(item)
    if len(run) > 1:
        out[-1] = _run_item(out[-1], run)
    return out


def _run_item(first: str | ArgsPiece, run: list[str]) -> str | ArgsPiece:
    return "".join(run) if isinstance(first, str) else ArgsPiece(first.call, "".join(run))


class UpstreamReader:
    """Reads one opened upstream stream (OpenAI chat-completion SSE; other kinds are translated into it by their
    upstream class). Iterate `raw()` for the pass-through (payloads are parsed only when they carry usage, a
    finish_reason, an error or possibly the key) or `docs()` for parsed chunk documents. Either raises ApiError
    when the stream fails, and ends normally only when the upstream finished."""

    def __init__(self, opened: Any, ex: Exchange, metrics: Any, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 ) -> None:
        self.opened = opened
        self.ex = ex
        self.metrics = metrics
        self.splitter = EventSplitter(max_event_bytes)
        self.redactor = _redactor(secrets_of(opened.upstream))
        self.done = False  # data: [DONE] went by
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        # the pass-through drops the usage-only chunk (noted all the same): the router asked for it, the client not
        self.withhold_usage = False

    def _fail(self, kind: str, exc: BaseException | None = None) -> ApiError:
        up = self.opened.upstream
        if kind != "error_event":
            up.breaker.failure()
        self.metrics.child(self.metrics.upstream_errors, up.name, kind).inc()
        self.ex.failed_on += (up.name,)
        what = {"timeout": "stalled mid-stream", "reset": "failed mid-stream",
                "truncated": "ended the stream early (no finish_reason and no [DONE])",
                "too_large": f"sent {exc}" if exc else "sent an event past the size bound",
                }.get(kind, "failed mid-stream")
        code = {"too_large": "upstream_event_too_large"}.get(kind, f"upstream_{kind}_mid_stream")
        return ApiError(502, f"Upstream {up.name!r} {what}.", code)

    def _failed(self, failure: Failure) -> ApiError:
        """A failure the upstream judged itself, counted as it says (a crash never counts toward the breaker)."""
        up = self.opened.upstream
        if failure.counts:
            up.breaker.failure()
        self.metrics.child(self.metrics.upstream_errors, up.name, failure.kind).inc()
        self.ex.failed_on += (up.name,)
        return failure.error

    async def _reads(self) -> AsyncIterator[list[bytes]]:
        """The complete events of each upstream read (the bytes dispatch read first included): one list per read
        that completed any, so the layers above do their work once per read, not once per event."""
        chunks = self.opened.reply.chunks()
        splitter = self.splitter
        try:
            events = splitter.feed(self.opened.first)
            if events:
                yield events
            async for chunk in chunks:
                events = splitter.feed(chunk)
                if events:
                    yield events
            events = splitter.end()
            if events:
                yield events
            splitter.rest()  # an event without its blank line at the end is incomplete: dropped, as SSE says
        except UpstreamTooLarge as exc:
            raise self._fail("too_large", exc) from None
        except UpstreamFailed as exc:  # judged by the upstream itself: a local engine that crashed
            raise self._failed(exc.failure) from None
        except asyncio.TimeoutError:
            raise self._fail("timeout") from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                ConnectionResetError):
            raise self._fail("reset") from None
        if not self.done and self.finish_reason is None:
            raise self._fail("truncated")
        self._ended()

    def _ended(self) -> None:
        """The stream ended normally: the upstream's success for its breaker (a stream is judged at its end, not at
        its first chunk, see `dispatch._attempt`)."""
        self.opened.upstream.breaker.success()

    def _inspect(self, data: bytes) -> dict[str, Any] | None:
        """The payload parsed, with the end, usage and upstream errors noted; None when it is not an object."""
        try:
            doc = jsoncodec.loads(data)
        except (ValueError, RecursionError):
            return None
        return self._note(doc)

    def _note(self, doc: Any) -> dict[str, Any] | None:
        """`doc` when it is an object, with the end, usage and an upstream error (raised) noted."""
        if not isinstance(doc, dict):
            return None
        if "error" in doc and carries_error(doc):  # (the look-up first: a call only for the rare one with the member)
            self._error_event(doc["error"])
        choices = doc.get("choices")
        if choices:
            for choice in choices:
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    self.finish_reason = str(choice["finish_reason"])
                    if self.finish_reason in FAILED_FINISHES:
                        self._error_event(finished_with(self.finish_reason))
        usage = doc.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            self.ex.usage_from(usage)
        return doc

    def _error_event(self, err: Any) -> NoReturn:
        detail = err.get("message") if isinstance(err, dict) else err
        detail = self.redactor.text(str(detail if detail is not None else err))
        self._fail("error_event")
        raise mid_stream_error(self.opened.upstream.name, err, detail[:300])

    def _raw_event(self, event: bytes) -> bytes:
        data = event_data(event)
        redactor = self.redactor
        if not event.startswith(b"data:") and (err := error_field(event)) is not None:  # `error: {...}`, `event:
            self._error_event(error_value(err))  # error`: an upstream error event, not a comment to pass on
        if data is None:  # a comment, an id: nothing a client reads; one that may hold a secret is dropped
            return b"" if redactor.suspicious(event) else event
        if data == b"[DONE]" or data.strip() == b"[DONE]":
            self.done = True
            return event
        if (b'"usage"' in data and _USAGE.search(data) is not None) or b'"error"' in data \
                or redactor.suspicious(data) or _FINISH.search(data) is not None:
            if redactor.suspicious(data):
                clean = redactor.data(data)
                event, data = (event, data) if clean == data else (b"data: " + clean + b"\n\n", clean)
            if usage_only(self._inspect(data)) and self.withhold_usage:
                return b""
        if redactor.secrets and (not event.startswith(b"data: ") or event.find(b"\n") != len(event) - 2):
            # more lines than its payload (an id, an event name, a comment): if they may hold a secret, they go
            other = b"\n".join(line for line in event.split(b"\n") if not line.startswith(b"data:"))
            if redactor.suspicious(other):
                event = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"
        return event

    def _plain_run(self, events: list[bytes]) -> tuple[bytes, int]:
        """The read's first events that need no look, joined, and how many they are: `_raw_event` would pass each
        as it is and note nothing, as it holds no `[DONE]`, usage, error, secret or escape a secret could hide in,
        and only null finish_reasons. Found on the joined bytes, which hold every payload's bytes (a multi-line
        event's payload joins its lines with a newline, which none of these spellings holds): the events before
        the first one holding any of them."""
        blob = events[0] if len(events) == 1 else b"".join(events)
        first = min(_first_usage(blob, _first_of(blob, _LOOK_AT)), self.redactor.first_suspicious(blob),
                    _first_finish(blob))
        if first == len(blob):
            return blob, len(events)
        if len(events) == 1:
            return b"", 0
        ends = list(itertools.accumulate(map(len, events)))
        k = bisect.bisect_right(ends, first)  # the event holding `first`
        return (blob[:ends[k - 1]] if k else b""), k

    async def raw(self) -> AsyncIterator[list[bytes]]:
        """The upstream's events as they go to a pass-through client, one list per upstream read (the read's
        first events that need no look as one piece)."""
        before: list[bytes] = []  # the last read's events (see `_error_before`)
        async for events in self._reads():
            plain, k = self._plain_run(events)
            out: list[bytes] = [plain] if plain else []
            try:
                for event in events[k:] if k else events:
                    out.append(self._raw_event(event))
                if self.done and self.finish_reason is None and (err := _error_before(before, events[:k])) is not None:
                    out = [e for e in out if b"[DONE]" not in e]  # (never in the events passed unread)
                    self.done = False
                    self._error_event(err)
            except ApiError:  # an upstream error event: the events before it go out first, as one by one
                if out:
                    yield out
                raise
            yield out
            before = events

    def _payloads(self, events: list[bytes]) -> list[bytes]:
        redactor = self.redactor
        suspicious = redactor.suspicious if redactor.secrets else None
        out = []
        for event in events:
            # event_data's usual one-line event without the call
            if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
                data: bytes | None = event[6:-2]
            elif (err := error_field(event)) is not None:  # `error: {...}`, `event: error`: an upstream error
                out.append(jsoncodec.dumps({"error": error_value(err)}))  # event, in its place (see `_note`)
                continue
            else:
                data = event_data(event)
            if data is None:
                continue
            if not data.startswith(b"{") and (data == b"[DONE]" or data.strip() == b"[DONE]"):
                self.done = True
                continue
            if suspicious is not None and suspicious(data):
                data = redactor.data(data)
            out.append(data)
        return out

    async def docs(self, texts: bool = False) -> AsyncIterator[list[Any]]:
        """The parsed chunk documents, one list per upstream read that completed any. `jsoncodec.loads`'s checks
        (long integers, surrogate escapes) are made once over the read's payloads, and only when one of them is
        parsed (a text or piece its template takes is a string, which orjson decodes or refuses); an upstream error
        event ends the stream after the documents before it (as when they went one by one).

        With `texts`, a content-only chunk spelled like the stream's last one (the usual run of text events) comes
        as its text (a `str`), and an argument-only tool-call chunk spelled like the last one as its call index
        and argument piece (an `ArgsPiece`), instead of a document: such a chunk carries no finish, usage
        or error, and its envelope members are those the consumer already took from earlier documents. A read's run
        of such texts, or of one call's pieces, comes as one."""
        templates: list[_Plain] = []
        async for events in self._reads():
            payloads = self._payloads(events)
            if not payloads:
                continue
            load: Callable[[bytes], Any] | None = None  # decided once a payload of the read needs parsing
            docs: list[Any] = []
            joined_run = False
            for data in payloads:
                item = None
                for t in templates:
                    if data.startswith(t.head):
                        item = t.item(data)
                        break
                if item is not None:
                    if docs and _continues(docs[-1], item):
                        joined_run = True  # joined below
                    docs.append(item)
                    continue
                if load is None:
                    load = _loader(payloads)
                try:
                    value = load(data)
                except (ValueError, RecursionError):
                    continue
                try:
                    doc = self._note(value)
                except ApiError:
                    if docs:
                        yield _joined(docs) if joined_run else docs
                    raise
                if doc is None:
                    continue
                docs.append(doc)
                if texts:
                    templates = _relearn(templates, data, doc)
            if docs:
                yield _joined(docs) if joined_run else docs


# --- secrets in what goes out -------------------------------------------------------------------------------------

_TEXT_KINDS = {"content": "content", "reasoning_content": "reasoning", "reasoning": "reasoning", "refusal": "refusal"}
Field = tuple[Any, dict[str, Any], str]  # a channel, the dict holding its text, the key


def _index(value: Any) -> int:
    """A choice's or a call's index as a channel names it (an upstream's that is not an integer: 0)."""
    return value if type(value) is int else 0


def _kind(channel: tuple[Any, ...]) -> str:
    """What a channel carries: "call" (a call's arguments), or the kind of text ("content", "reasoning", ...)."""
    key = channel[1]
    return "call" if key in ("arguments", "function_call", "input") else _TEXT_KINDS.get(key, "content" if key in (
        "text", "logprobs") else "reasoning")


class ItemGate:
    """A chat-completion stream's items (chunk documents, or the pipeline's `StreamChunk`s) through a `SecretGate`.
    Each choice's content, reasoning (`reasoning_content`, `reasoning`, `reasoning_details`), refusal, logprob
    tokens, a completion's `text`, and each call's arguments (legacy `function_call` too) are channels: the end of
    a piece that could begin a secret waits for its channel's next piece. Choices and calls are independent
    (interleaved, each waits for its own). Within a choice, text a channel held goes out (`SecretGate.release`)
    before another kind comes (a call after the content: the order stays), and whatever a choice held, before
    its finishing chunk (the usage chunk, or `rest`, for all). Items are changed in place (they are the stream's
    own); names and ids are redacted whole."""

    __slots__ = ("_envelope", "_head", "_legacy", "_logprobs", "_queued", "gate")

    def __init__(self, gate: SecretGate) -> None:
        self.gate = gate
        self._head: bytes | None = None  # the envelope of the last StreamChunk, for a chunk made of held text
        self._envelope: dict[str, Any] = {}  # or the last chunk document (its members but the choices and usage)
        self._logprobs: list[tuple[int, dict[str, Any]]] = []  # the item's choices' logprobs (see `_tokens`)
        # per choice: logprob entries that wait (the gate holds the end of their tokens), and what the gate let
        # out of their tokens so far
        self._queued: dict[int, tuple[list[dict[str, Any]], list[str]]] = {}
        self._legacy: set[int] = set()  # the choices whose logprobs are a completion's (parallel lists)

    def items(self, items: list[Any]) -> list[Any]:
        out: list[Any] = []
        gate = self.gate
        for item in items:
            fields, ends = self._fields(item)
            if gate.held:
                out += self._made(self._released(fields, ends))
            for channel, holder, key in fields:
                holder[key] = gate.text(channel, holder[key], final=ends is None or channel[0] in ends)
            for index, logprobs in self._logprobs:
                self._gated_logprobs(index, logprobs, ends is None or index in ends)
            out.append(item)
        return out

    def _gated_logprobs(self, index: int, logprobs: dict[str, Any], final: bool) -> None:
        """A choice's logprobs with the entries that go out now: chat's `content` list, or a completion's parallel
        lists (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`)."""
        if isinstance(logprobs.get("content"), list):
            entries = [e for e in logprobs["content"] if isinstance(e, dict) and type(e.get("token")) is str]
            logprobs["content"] = self._tokens(index, entries, final)
            return
        self._legacy.add(index)
        lists = {k: v for k, v in logprobs.items() if k in _LEGACY_LISTS and isinstance(v, list)}
        tokens = lists.get("tokens", [])
        entries = [{"token": t, **{k: v[i] for k, v in lists.items() if k != "tokens" and i < len(v)}}
                   for i, t in enumerate(tokens) if type(t) is str]
        logprobs.update(_legacy_lists(self._tokens(index, entries, final), tuple(lists)))

    def _tokens(self, index: int, entries: list[dict[str, Any]], final: bool) -> list[dict[str, Any]]:
        """The logprob entries (`token` each) that go out now: whole, as they came, once the gate let out all of
        their tokens' text unchanged; as one entry of what it let out (no alternatives) when it redacted some. An
        entry waits while the gate holds the end of its token (a token is never cut: its logprob stays its)."""
        channel = (index, "logprobs")
        gate = self.gate
        out: list[dict[str, Any]] = []
        for entry in entries:
            queue, told = self._queued.setdefault(index, ([], []))
            queue.append(entry)
            told.append(gate.text(channel, entry["token"]))
            if channel not in gate.held:
                out += self._settled(index)
        if final and index in self._queued:
            self._queued[index][1].append(gate.release(channel))
            out += self._settled(index)
        return out

    def _settled(self, index: int) -> list[dict[str, Any]]:
        queue, told = self._queued.pop(index)
        text = "".join(told)
        if text == "".join(e["token"] for e in queue):
            return queue
        if not text:
            return []
        first = queue[0]
        merged = {**first, "token": text}
        if "bytes" in first:
            merged["bytes"] = list(text.encode("utf-8", "surrogatepass"))
        if "top_logprobs" in first:  # the alternatives could spell what was redacted
            merged["top_logprobs"] = [] if isinstance(first["top_logprobs"], list) else None
        return [merged]

    def rest(self) -> list[Any]:
        """What the channels still hold, as chunks (the stream ends, finished or not)."""
        return self._made(list(self.gate.held))

    def _released(self, fields: list[Field], ends: set[Any] | None) -> list[Any]:
        """The held channels to let go before an item with `fields` that ends the choices `ends` (None: all)."""
        touched = {c for c, _, _ in fields}
        kinds = {(c[0], _kind(c)) for c in touched}
        out = []
        for channel in self.gate.held:
            if channel in touched:
                continue
            choice = channel[0]
            if ends is None or choice in ends or (_kind(channel) != "call" and any(
                    c == choice and k != _kind(channel) for c, k in kinds)):
                out.append(channel)
        return out

    def _fields(self, item: Any) -> tuple[list[Field], set[Any] | None]:
        """The texts `item` carries, and the choices it ends (None: all, a chunk without choices: the usage)."""
        found: list[Field] = []
        self._logprobs = []
        if type(item) is StreamChunk:
            self._head = item.head
            self._delta(0, item.delta, found)
            return found, set()
        if not isinstance(item, dict):
            return found, set()
        self._head = None
        self._envelope = item
        self._logprobs = []
        choices = item.get("choices")
        if not isinstance(choices, list) or not choices:
            return found, None
        ends: set[Any] = set()
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = _index(choice.get("index", 0))
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(index, delta, found)
            if type(choice.get("text")) is str:  # a completion's
                found.append(((index, "text"), choice, "text"))
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and (isinstance(logprobs.get("content"), list)
                                               or isinstance(logprobs.get("tokens"), list)):
                self._logprobs.append((index, logprobs))
            if choice.get("finish_reason"):
                ends.add(index)
        return found, ends

    def _delta(self, index: int, delta: dict[str, Any], found: list[Field]) -> None:
        for key in _TEXT_KINDS:
            if type(delta.get(key)) is str:
                found.append(((index, key), delta, key))
        details = delta.get("reasoning_details")
        if type(details) is list:
            for k, detail in enumerate(details):
                if type(detail) is dict:
                    for key in ("text", "summary"):
                        if type(detail.get(key)) is str:
                            found.append(((index, "reasoning_details", _index(detail.get("index", k)), key), detail,
                                          key))
        secrets = self.gate.secrets
        legacy = delta.get("function_call")
        if type(legacy) is dict:
            if type(legacy.get("name")) is str:
                legacy["name"] = scrub_text(legacy["name"], secrets)
            if type(legacy.get("arguments")) is str:
                found.append(((index, "function_call"), legacy, "arguments"))
        calls = delta.get("tool_calls")
        if type(calls) is not list:
            return
        for call in calls:
            if type(call) is not dict:
                continue
            if type(call.get("id")) is str:
                call["id"] = scrub_text(call["id"], secrets)
            fn = call.get("function")
            if type(fn) is not dict:
                custom = call.get("custom")  # a custom (free-form) tool's call: its input is read like arguments
                if type(custom) is dict:
                    if type(custom.get("name")) is str:
                        custom["name"] = scrub_text(custom["name"], secrets)
                    if type(custom.get("input")) is str:
                        found.append(((index, "input", _index(call.get("index", 0))), custom, "input"))
                continue
            if type(fn.get("name")) is str:
                fn["name"] = scrub_text(fn["name"], secrets)
            if type(fn.get("arguments")) is not str and fn.get("name") and fn.get("arguments") is None:
                fn["arguments"] = ""  # a call's header without arguments: its channel begins (what it held goes here)
            if type(fn.get("arguments")) is str:
                found.append(((index, "arguments", _index(call.get("index", 0))), fn, "arguments"))

    def _made(self, channels: list[Any]) -> list[Any]:
        """Chunks of what `channels` held, let go (see `SecretGate.release`); a logprob token's is dropped (its
        text goes out with the content's)."""
        out: list[Any] = []
        envelope = {k: v for k, v in self._envelope.items() if k not in ("choices", "usage")}
        for channel in channels:
            index, key = channel[0], channel[1]
            if key == "logprobs":
                entries = self._tokens(index, [], True)
                if entries:
                    logprobs: dict[str, Any] = _legacy_lists(entries) if index in self._legacy else {
                        "content": entries}
                    out.append({**envelope, "choices": [{"index": index, **(
                        {"text": ""} if index in self._legacy else {"delta": {}}), "logprobs": logprobs,
                        "finish_reason": None}]})
                continue
            text = self.gate.release(channel)
            if not text:
                continue
            if key == "arguments":
                delta: dict[str, Any] = {"tool_calls": [{"index": channel[2], "function": {"arguments": text}}]}
            elif key == "input":
                delta = {"tool_calls": [{"index": channel[2], "custom": {"input": text}}]}
            elif key == "function_call":
                delta = {"function_call": {"arguments": text}}
            elif key == "reasoning_details":
                delta = {"reasoning_details": [{"type": "reasoning.text", "index": channel[2], channel[3]: text}]}
            else:
                delta = {key: text}
            if self._head is not None and index == 0 and key != "text":
                out.append(StreamChunk(self._head, delta))
            elif key == "text":
                out.append({**envelope, "choices": [{"index": index, "text": text, "finish_reason": None}]})
            else:
                out.append({**envelope, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        return out


_LEGACY_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def _legacy_lists(entries: list[dict[str, Any]], keys: tuple[str, ...] = _LEGACY_LISTS) -> dict[str, list[Any]]:
    """A completion's parallel logprob lists `keys` from entries (`token` and the others' members)."""
    return {key: [e["token"] if key == "tokens" else e.get(key) for e in entries] for key in keys}


def gate_for(secrets: tuple[str, ...]) -> ItemGate | None:
    """An ItemGate for a stream from an upstream holding `secrets`; None when it holds none."""
    return ItemGate(SecretGate(secrets)) if secrets else None


async def gated(batches: AsyncGenerator[Any, None], gate: ItemGate) -> AsyncGenerator[Any, None]:
    """A stream's batches (lists of items; anything else passes as it is) through `gate`, then what the gate still
    holds: at the end, or before the error that ends the stream (its error event comes after them)."""
    async with contextlib.aclosing(batches):
        try:
            async for batch in batches:
                yield gate.items(batch) if type(batch) is list else batch
        except ApiError:
            if rest := gate.rest():
                yield rest
            raise
    if rest := gate.rest():
        yield rest


# --- the writer --------------------------------------------------------------------------------------------------

class Encoder(Protocol):
    """One dialect's stream encoding: items in, bytes out."""

    keepalive: bytes

    def feed(self, item: Any) -> list[bytes]: ...

    def feed_all(self, items: list[Any]) -> bytes:
        """`feed` of each item, joined (what one upstream read made: one write)."""

    def finish(self) -> list[bytes]: ...

    def error(self, err: ApiError) -> list[bytes]: ...


class ClientGone(Exception):
    pass


FLUSH_BYTES = 64 * 1024
WRITE_STALL_S = web.AppKey("agentgate_write_stall_s", float)  # `server.idle_timeout`: see `_Out`


class _SseResponse(web.StreamResponse):
    """A streamed response whose headers wait for its first body bytes and go out in the same socket write
    (`_Out` sends them alone when nothing else is ready by the time the producer first waits)."""

    _send_headers_immediately = False  # aiohttp's opt-in to buffered headers (a no-op where it does not exist)


class _Out:
    """The response and the time of its last write; writes keepalives while it stays idle.

    Writes are queued and go out together once the producer waits (for the upstream's next bytes): the events
    made from one upstream read cost one socket write, not one each, and the first of them carries the headers.
    The queue holds at most FLUSH_BYTES before the producer itself waits for the socket. `end()` sends what is
    left with the response's end.

    A socket write waits only while the client leaves the bytes unread (its buffers full). One that waits `stall`
    seconds ends the stream as a client gone: the connection (`transport`) is aborted and the write raises
    `ClientGone`, so that a client that stopped reading does not hold the upstream and its slot while it keeps the
    connection open (the upstream read waits meanwhile: its own idle timeout never fires). One timer watches the
    writes, armed by a write when none is, re-armed while writes go on: not one per write."""

    def __init__(self, resp: web.StreamResponse, keepalive: bytes, interval: float, since: float | None = None,
                 stall: float | None = None, transport: asyncio.Transport | None = None) -> None:
        self.resp = resp
        self.keepalive = keepalive
        self.interval = interval
        self.last = time.monotonic() if since is None else since  # `since`: nothing went out from then (monotonic)
        self.stall = stall if transport is not None else None
        self._transport = transport
        self._writing = 0  # socket writes in progress (a keepalive's can start while another waits)
        self._since = 0.0  # from when they made no progress (the loop's clock): the first began, or one ended
        self._watch: asyncio.TimerHandle | None = None
        self._stalled = False
        self._timer: asyncio.TimerHandle | None = None
        self._queue: list[bytes] = []
        self._queued = 0
        self._sender: asyncio.Task[None] | None = None
        self._kick: asyncio.Handle | None = None  # starts the sender once the producer waits (see `_schedule`)
        self._failed: BaseException | None = None
        self._ending = False
        self._started = False  # something (the headers at least) went out
        self._loop = asyncio.get_running_loop()  # once: each look-up is a getpid() system call (CPython 3.11)

    async def write(self, data: bytes) -> None:
        if self._failed is not None:
            raise self._failed
        if not data:
            return
        self._queue.append(data)
        self._queued += len(data)
        self.last = time.monotonic()
        if self._queued >= FLUSH_BYTES:
            await self.flush()
        elif self._sender is None:
            self._schedule()

    async def flush(self) -> None:
        """Everything queued, written."""
        if self._sender is not None:
            await self._sender
        if self._failed is not None:
            raise self._failed
        await self._send()

    async def end(self, final: bytes) -> None:
        """What is queued and `final`, written with the response's end (one socket write when nothing is in
        flight)."""
        self._ending = True
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        if self._sender is not None:  # one that has not run yet writes nothing now
            await self._sender
        if self._failed is not None:
            raise self._failed
        data = b"".join([*self._queue, final])
        self._queue.clear()
        self._queued = 0
        await self._put(data, True)

    async def _send(self) -> None:
        if not self._queue and not self._started and not self._ending:
            self._queue.append(b"")  # the headers alone: nothing else was ready when the producer first waited
        while self._queue and not self._ending:
            data = self._queue[0] if len(self._queue) == 1 else b"".join(self._queue)
            self._queue.clear()
            self._queued = 0
            self._started = True
            await self._put(data, False)

    async def _put(self, data: bytes, last: bool) -> None:
        """One socket write (with the response's end when `last`), bounded by `stall` (see the class)."""
        if self.stall is not None:
            if not self._writing:
                self._since = self._loop.time()
                if self._watch is None:
                    self._watch = self._loop.call_at(self._since + self.stall, self._check)
            self._writing += 1
        try:
            if last:
                await self.resp.write_eof(data)
            else:
                await self.resp.write(data)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            raise ClientGone from None
        finally:
            if self.stall is not None:
                self._writing -= 1
                if self._writing:  # another still waits: it is watched from this progress on
                    self._since = self._loop.time()
        if self._stalled:  # (the aborted connection let the write return)
            raise ClientGone

    def _check(self) -> None:
        """The write watch: the connection aborted when the writes in progress made no progress for `stall`
        seconds; else watched again for them (none in progress: the next write arms the watch)."""
        self._watch = None
        since, stall = self._since, self.stall
        if not self._writing or stall is None or self._transport is None:
            return
        if self._loop.time() - since < stall:
            self._watch = self._loop.call_at(since + stall, self._check)
            return
        self._stalled = True
        self._transport.abort()  # (a close would wait for the unread bytes to go out first)

    async def _send_later(self) -> None:
        try:
            await self._send()
        except Exception as exc:  # the producer raises it at its next write
            self._failed = exc
        finally:
            self._sender = None

    def _beat(self) -> None:
        """The keepalive timer: a keepalive queued once nothing went out for `interval` seconds."""
        now = time.monotonic()
        if now - self.last >= self.interval:
            if self._failed is not None:  # the client is gone: no more keepalives
                self._timer = None
                return
            self._queue.append(self.keepalive)
            self._queued += len(self.keepalive)
            self.last = now
            if self._sender is None:
                self._schedule()
        delay = max(0.05, self.last + self.interval - time.monotonic())
        self._timer = self._loop.call_later(delay, self._beat)

    def start(self) -> None:
        """Keepalives, and the headers sent by the time the producer first waits."""
        if self._sender is None:
            self._schedule()
        if self.keepalive and self.interval > 0:  # counted from `since`: a stream started for a slow first chunk
            delay = max(0.0, self.last + self.interval - time.monotonic())  # has its first keepalive at once
            self._timer = self._loop.call_later(delay, self._beat)

    def _schedule(self) -> None:
        """The sender started once the producer waits: a loop callback, which the loop runs only then, starts
        it, unless the stream ended first (then `end()` wrote everything: a stream ready at once costs no task)."""
        if self._kick is None:
            self._kick = self._loop.call_soon(self._start_sender)

    def _start_sender(self) -> None:
        self._kick = None
        if self._sender is None and not self._ending:
            self._sender = self._loop.create_task(self._send_later())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None


async def _end_failed(out: _Out, encoder: Encoder, err: ApiError,
                      before_finish: Callable[[], Awaitable[None]] | None) -> None:
    """End the stream with the encoder's error events for `err`, `before_finish` run before they are sent."""
    tail = b"".join(encoder.error(err))
    if before_finish is not None:
        await before_finish()
    await out.end(tail)


async def write_stream(request: web.Request, ex: Exchange, items: AsyncIterator[Any], encoder: Encoder,
                       headers: dict[str, str],
                       before_finish: Callable[[], Awaitable[None]] | None = None,
                       interval: float | None = None) -> web.StreamResponse:
    """Send `items` through `encoder` as one SSE response. An ApiError from `items` (or the router's shutdown)
    ends the stream with the encoder's error events; `before_finish` runs once the last events are known, those
    of an end or of such an error, before they are sent (a client reacting to the final event finds whatever it
    stored). `items` is closed however the stream ends."""
    resp = _SseResponse(status=200, headers={**SSE_HEADERS, **headers})
    await resp.prepare(request)
    in_flight = request.app.get(IN_FLIGHT)
    if in_flight is not None:
        in_flight.streaming()
    ex.status = 200
    if ex.ttft is None:
        ex.ttft = time.perf_counter() - ex.started
    # nothing has gone out since the request came: the keepalive interval counts from then
    since = time.monotonic() - (time.perf_counter() - ex.started)
    out = _Out(resp, encoder.keepalive, KEEPALIVE_S if interval is None else interval, since,
               request.app.get(WRITE_STALL_S), request.transport)
    out.start()
    try:
        try:
            async for item in items:  # an item, or the list of items one upstream read made: one write
                if type(item) is list:
                    await out.write(encoder.feed_all(item))
                else:
                    await out.write(b"".join(encoder.feed(item)))
            final = b"".join(encoder.finish())
            if before_finish is not None:
                await before_finish()
            await out.end(final)
        except (ClientGone, ConnectionResetError, aiohttp.ClientConnectionResetError):
            raise
        except ApiError as err:
            ex.error, ex.ended_with = err.code, err.status
            await _end_failed(out, encoder, err, before_finish)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if in_flight is None or not in_flight.ending() or task is None:
                raise
            uncancel(task)  # the shutdown's, at the end of its drain: the stream ends with its error event
            stopping = ApiError(503, "The router is shutting down; this stream was stopped before its answer "
                                "finished.", "server_shutting_down")
            ex.error, ex.ended_with = stopping.code, stopping.status
            await _end_failed(out, encoder, stopping, before_finish)
        except Exception as exc:  # a bug: the stream still ends, with the error event, and the next one is unharmed
            log.error("unexpected error in stream %s", ex.request_id, exc_info=exc)
            internal = ApiError(500, "Internal error; the router's log has the details.", "internal_error")
            ex.error, ex.ended_with = internal.code, internal.status
            try:
                tail = b"".join(encoder.error(internal))
            except Exception:  # the encoder is what failed: the OpenAI error event
                tail = internal.sse_event()
            await out.end(tail)
        finally:
            out.stop()
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        await resp.write_eof()
    except (ClientGone, ConnectionResetError, aiohttp.ClientConnectionResetError):
        ex.client_gone()
    return resp


# --- encoders ----------------------------------------------------------------------------------------------------

class PassThrough:
    """Upstream events as they came (optionally rewritten, e.g. the model name); `[DONE]` added when the upstream
    finished without one."""

    keepalive = b": keepalive\n\n"

    def __init__(self, reader: UpstreamReader, rewrite: Callable[[bytes], bytes] | None = None) -> None:
        self.reader = reader
        self.rewrite = rewrite

    def feed(self, item: bytes) -> list[bytes]:
        return [self.rewrite(item) if self.rewrite is not None else item]

    def feed_all(self, items: list[bytes]) -> bytes:
        rewrite = self.rewrite
        data = items[0] if len(items) == 1 else b"".join(items)
        # the rewrite (the model name) never spans events: one call over the read's bytes
        return data if rewrite is None else rewrite(data)

    def finish(self) -> list[bytes]:
        return [] if self.reader.done else [b"data: [DONE]\n\n"]

    def error(self, err: ApiError) -> list[bytes]:
        return [err.sse_event()]


def _openai_event(item: dict[str, Any] | StreamChunk) -> bytes:
    if type(item) is StreamChunk:
        return item.head + jsoncodec.dumps(item.delta) + STREAM_CHUNK_END
    return b"data: " + jsoncodec.dumps(item) + b"\n\n"


class OpenAIChunks:
    """Chunk documents (and the pipeline's own `StreamChunk`s, from their encoded envelope) as OpenAI
    chat-completion SSE."""

    keepalive = b": keepalive\n\n"

    def feed(self, item: dict[str, Any] | StreamChunk) -> list[bytes]:
        return [_openai_event(item)]

    def feed_all(self, items: list[dict[str, Any] | StreamChunk]) -> bytes:
        return b"".join([_openai_event(item) for item in items])

    def finish(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def error(self, err: ApiError) -> list[bytes]:
        return [err.sse_event()]


class OpenAIChunksNoUsage(OpenAIChunks):
    """`OpenAIChunks` without the usage-only chunk: the router asked the upstream for usage (to count it), the
    client did not."""

    def feed(self, item: dict[str, Any] | StreamChunk) -> list[bytes]:
        return [] if usage_only(item) else super().feed(item)

    def feed_all(self, items: list[dict[str, Any] | StreamChunk]) -> bytes:
        return super().feed_all([item for item in items if not usage_only(item)])


class Translated:
    """A dialect translator (Messages, Responses) as an encoder."""

    def __init__(self, translator: Any, keepalive: bytes) -> None:
        self.translator = translator
        self.keepalive = keepalive
        self._unsent: list[bytes] = []  # what a read's items made before one of them ended the stream

    def feed(self, item: dict[str, Any] | StreamChunk) -> list[bytes]:
        return list(self.translator.feed(item))

    def feed_all(self, items: list[dict[str, Any] | StreamChunk]) -> bytes:
        """The events of one read's items; when one of them ends the stream (a Response past its bound), those
        of the items before it go out before the error event (numbered: the stream would skip them)."""
        feed = self.translator.feed
        out: list[bytes] = []
        try:
            for item in items:
                out += feed(item)
        except ApiError:
            self._unsent = out
            raise
        return b"".join(out)

    def finish(self) -> list[bytes]:
        return list(self.translator.finish())

    def error(self, err: ApiError) -> list[bytes]:
        out, self._unsent = self._unsent, []
        return out + list(self.translator.error(err))


MESSAGES_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
OPENAI_KEEPALIVE = b": keepalive\n\n"
