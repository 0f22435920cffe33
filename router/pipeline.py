"""The chat pipeline shared by every dialect: dispatch, then tool-call repair, as parsed documents.

`chat()` returns either a whole completion document or an async iterator of chunk documents, both already
repaired and showing the requested model name. OpenAI routes encode them back to JSON/SSE; the Anthropic and
Responses routes translate them. (Requests without tools on OpenAI routes skip this and pass bytes through.)

Repair policy per model entry (`repair.mode`, `repair.format`, `repair.on_failure`, `repair.retries`); the header
`x-agentgate-repair: off` turns it off for one request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Container
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from engines.wire import REPAIRS_HEADER, REPORT_MEMBER
from repair import RepairResult, StreamRepairer, ToolIndex, repair_message, requires_call
from repair.deltas import stream_deltas
from repair.incremental import ToolArgsDelta
from repair.types import ContentDelta
from repair.validate import Reported, StreamValidator, ValidateEvent, validate_message

from . import jsoncodec, relay
from .capture import ToolOutput
from .chat_types import (
    ArgsPiece,
    ChatRequest,
    ChunkPart,
    HistoryIds,
    StreamChunk,
    answer_parts,
    asks_for_data,
    chunk_parts,
    member,
    stream_head,
)
from .config.model import RepairPolicy
from .context import RequestContext
from .custom_tools import (
    StreamCalls,
    call_as_custom,
    call_as_function,
    custom_names,
    custom_of,
    functions_view,
)
from .dispatch import Opened, dispatch
from .errors import ApiError
from .exchange import Exchange
from .overflow import ContextOverflowError, overflow_of
from .redact import scrub_text, scrub_value
from .relay import UpstreamReader
from .repair_owner import chunk_report, engine_repaired, stream_checker, whole_report
from .routing import Route
from .stream_logprobs import StreamLogprobs, with_logprobs
from .upstream.base import ERROR_MESSAGE_MAX, Refit, Unknown, Upstream, UpstreamRequest, error_message

log = logging.getLogger("agentgate")
CONSTRAINED_HEADER = "x-agentgate-constrained"  # a local engine's reply: which grammar constrained it
PATH = "/chat/completions"


class UpstreamStatus(Exception):
    """The upstream answered with a non-200 status that is the client's to see (e.g. 400)."""

    def __init__(self, opened_status: int, body: bytes, content_type: str, provider: str,
                 secrets: tuple[str, ...] = (), upstream: Upstream | None = None, model: str | None = None) -> None:
        super().__init__(f"upstream status {opened_status}")
        self.status = opened_status
        self.body = body
        self.content_type = content_type
        self.provider = provider
        self.secrets = secrets
        self.upstream = upstream  # the one that answered, asked for `model`
        self.model = model

    def learn(self, unknown: Unknown) -> None:
        """Remember that the upstream that answered refuses the fields `unknown` for the model it was asked for:
        its requests for that model go without them from now on (`Refusals`)."""
        if self.upstream is not None:
            self.upstream.refused.learn(self.model, unknown)

    def api_error(self) -> ApiError:
        """The status as the route's error, with the upstream's message (a translated route cannot pass the body
        on), read from whatever shape it has (`base.error_message`: OpenAI's, `{"error": "..."}`, Gemini's array,
        Mistral's and FastAPI's validation lists), the provider's secrets redacted, cut short."""
        message, code = f"Upstream {self.provider!r} answered {self.status}.", "upstream_error"
        try:
            doc = json.loads(self.body)
        except (ValueError, RecursionError):
            doc = None
            text = self.body[:ERROR_MESSAGE_MAX].decode("utf-8", "replace").strip()
            if text and not text.startswith("<"):  # a plain text answer (not an HTML error page)
                message = f"{message[:-1]}: {text}"
        found = error_message(doc) if doc is not None else None
        if found:
            message = scrub_text(found, self.secrets)[:ERROR_MESSAGE_MAX]
        err = doc.get("error") if isinstance(doc, dict) else doc[0].get("error") \
            if isinstance(doc, list) and doc and isinstance(doc[0], dict) else None
        if found and (overflow := overflow_of(self.status, doc, message)) is not None:
            return ContextOverflowError(overflow, message, self.provider)
        if isinstance(err, dict) and err.get("code") and type(err["code"]) in (str, int):
            code = str(err["code"])  # OpenAI's shape (vLLM >= 0.10, llama.cpp, Ollama); Gemini's in its array
        return ApiError(self.status, message, code, headers={"x-agentgate-provider": self.provider})


Items = list[dict[str, Any] | StreamChunk]  # what one upstream read made of a stream, written to the client at once


@dataclass
class ChatReply:
    doc: dict[str, Any] | None = None  # non-stream
    raw: bytes | None = None  # non-stream: `doc` as the upstream's bytes, when nothing but the model name changed
    chunks: AsyncIterator[Items] | None = None  # stream, one list per upstream read; the first already made
    headers: dict[str, str] = field(default_factory=dict)


def repair_enabled(ctx: RequestContext, body: dict[str, Any]) -> bool:
    if ctx.repair.mode == "off" or ctx.repair_off:
        return False
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return False
    # several choices streamed: passed through as they come (the stream repairs one choice); `n: 2.0` too, which
    # vLLM reads as 2 (OpenAI refuses it: its 400 passes through)
    n = body.get("n")
    return not (body.get("stream") is True and isinstance(n, (int, float)) and n > 1)


async def chat(ctx: RequestContext, body: dict[str, Any], *, stream: bool, raw: bytes = b"",
               refit: Refit | None = None) -> ChatReply:
    """Raises ApiError (nothing sent yet) or UpstreamStatus; a stream's later failure raises ApiError from the
    iterator (the caller ends its stream with an error event). `raw` is the client's body when it is `body`'s
    bytes (forwarded as they are on the first attempt). `refit`: how each request (a re-ask's too) leaves out the
    fields the router put in for an upstream that refuses them."""
    policy = ctx.repair
    repairing = repair_enabled(ctx, body)
    attempts = policy.retries + 1 if repairing and policy.on_failure == "retry" else 1
    index = ctx.tool_indexes.get(body["tools"], raw=raw or None) if repairing else None  # once per list
    customs: frozenset[str] | None = None
    if index is not None:
        index, customs = _with_customs(ctx, body["tools"], index)
    if not stream:
        return await _chat_whole(ctx, body, raw, repairing, attempts, index, customs, refit)
    return await _chat_stream(ctx.exchange, _stream_chunks(ctx, body, repairing, attempts, index, raw, customs,
                                                           refit))


_CUSTOMS = "chat_custom_tools"  # the ToolIndex memo entry: (custom tool names, the index repair uses)


def _with_customs(ctx: RequestContext, tools: list[Any], index: ToolIndex) -> tuple[ToolIndex, frozenset[str] | None]:
    """The index repair uses for a tools list, and the names of its `custom` (free-form) tools (None: it declares
    none), worked out once per list. Repair knows functions: a custom tool is in its index as a function taking one
    string, `input` (as the Responses route declares one), and calls to it are mapped back (`custom_tools`)."""
    memo = index.memo.get(_CUSTOMS)
    if memo is None:
        names = custom_names(tools)
        memo = index.memo[_CUSTOMS] = (names, ctx.tool_indexes.get(functions_view(tools)) if names else index)
    names, view = memo
    return view, names or None


def _request(ctx: RequestContext, body: dict[str, Any], raw: bytes, stream: bool,
             refit: Refit | None) -> UpstreamRequest:
    return UpstreamRequest(PATH, body, raw or None, ctx.upstream_headers, stream, ctx.limits.max_upstream_event_bytes,
                           refit=refit)


async def _chat_whole(ctx: RequestContext, body: dict[str, Any], raw: bytes, repairing: bool, attempts: int,
                      index: ToolIndex | None, customs: frozenset[str] | None = None,
                      refit: Refit | None = None) -> ChatReply:
    ex, route = ctx.exchange, ctx.route
    for attempt in range(attempts):
        opened = await dispatch(ctx, _request(ctx, body, raw if attempt == 0 else b"", False, refit))
        try:
            doc = _whole_doc(opened, ex, route, rename=False)
        finally:
            await opened.close()
        _note_constraint(ex, opened)
        upstream_model, doc["model"] = doc.get("model"), route.requested
        reply_headers = {"x-agentgate-provider": opened.upstream.name}
        if not repairing:
            doc.pop(REPORT_MEMBER, None)
            return ChatReply(doc=doc, headers=reply_headers)
        up = opened.reply.headers
        before = _messages(doc)
        # the engine repaired already: validate, and pass its bytes on when nothing had to change
        bare = REPORT_MEMBER not in doc
        reported = whole_report(doc, up) if engine_repaired(opened.upstream.kind, up) else None
        outcome = _repair_whole(doc, ex, body, ctx.repair, index, attempt < attempts - 1, reported, customs,
                                ctx.taken_ids(body))
        if isinstance(outcome, list):
            if reported is None:
                outcome = _with_upstream_kinds(ex, outcome, up.get(REPAIRS_HEADER))
            if outcome:
                reply_headers[REPAIRS_HEADER] = ",".join(outcome)
            unchanged = (bare if reported is not None else not outcome) and before == _messages(doc)
            raw_out = _renamed(opened.first, upstream_model, route.requested) if unchanged else None
            if raw_out is None and (secrets := relay.secrets_of(opened.upstream)):
                # repair may have decoded what the body's redaction could not read (a key written with escapes
                # inside a call in the text): the provider's secrets out of what goes to the client
                doc["choices"] = scrub_value(doc["choices"], secrets)
            return ChatReply(doc=doc, raw=raw_out, headers=reply_headers)
        body = _feedback(body, *outcome)
        _reasked(ctx, opened)
    raise AssertionError("unreachable")


def _reasked(ctx: RequestContext, opened: Opened) -> None:
    """The request goes to the upstream again, with the failed repair's feedback: counted as a retry."""
    ctx.exchange.next_answer()
    ctx.metrics.retried(opened.upstream.name, "repair")


def _messages(doc: dict[str, Any]) -> list[Any]:
    return [(c.get("message"), c.get("finish_reason")) if isinstance(c, dict) else None for c in doc["choices"]]


def _with_upstream_kinds(ex: Exchange, kinds: list[str], upstream_kinds: str | None) -> list[str]:
    """The kinds an upstream agentgate reported (x-agentgate-repairs) joined to ours."""
    if not upstream_kinds:
        return kinds
    ex.repairs = sorted({*ex.repairs, *upstream_kinds.split(",")})
    if ex.tool_outcome == "valid":
        ex.tool_outcome = "repaired"
    return sorted({*kinds, *upstream_kinds.split(",")})


async def _chat_stream(ex: Exchange, gen: AsyncGenerator[Items, None]) -> ChatReply:
    # the first chunk decides between an error status and a stream; past the keepalive interval the stream starts
    # anyway (keepalives flow, and a later failure is the stream's terminal error event): this waits for whichever
    # comes first, the first item (its task wakes the waiter as it ends) or the timer
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    first_task = loop.create_task(_first(gen, waiter, ex))
    timer = loop.call_later(relay.KEEPALIVE_S, _wake, waiter)
    try:
        await waiter
    except asyncio.CancelledError:
        await _Resumed(first_task, gen).aclose()  # the first item stopped, then the generator closed
        raise
    finally:
        timer.cancel()
    headers = {"x-agentgate-provider": ex.provider}
    if not first_task.done():
        return ChatReply(chunks=_Resumed(first_task, gen, late=True), headers=headers)
    first_task.result()  # raises before anything is sent to the client
    return ChatReply(chunks=_Resumed(first_task, gen), headers=headers)


async def _first(gen: AsyncGenerator[Items, None], waiter: asyncio.Future[None], ex: Exchange) -> Items:
    """The stream's first item; `waiter` woken as it ends (the task is done by the time the waiting one runs). A
    stream that makes none (its upstream sent nothing that is a chunk) is the upstream's error."""
    try:
        return await gen.__anext__()
    except StopAsyncIteration:
        raise ApiError(502, f"Upstream {ex.provider!r} ended the stream before its first chunk.",
                       "upstream_truncated") from None
    finally:
        _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Resumed:
    """A stream whose first item is made ahead (see `_chat_stream`): that item, then the generator's own, with no
    generator layer in between (`__anext__` hands over the generator's awaitable). An upstream status can only
    come with the first item (the stream's one dispatch, or a re-ask's, happens before anything is yielded): a
    `late` one (the stream started before it came) is the stream's ApiError. `aclose` closes the generator (a
    first item still on its way stopped first) however the stream ends."""

    __slots__ = ("_first", "_gen", "_late", "_taken")

    def __init__(self, first: asyncio.Future[Items], gen: AsyncGenerator[Items, None], late: bool = False) -> None:
        self._first = first
        self._gen = gen
        self._late = late
        self._taken = False

    def __aiter__(self) -> _Resumed:
        return self

    def __anext__(self) -> Awaitable[Items]:
        if self._taken:
            return self._gen.__anext__()
        self._taken = True
        return self._late_first() if self._late else self._first

    async def _late_first(self) -> Items:
        try:
            return await self._first
        except UpstreamStatus as up:
            raise up.api_error() from None

    async def aclose(self) -> None:
        first = self._first
        if not first.done():  # the client left before it came: the generator is still running for it
            first.cancel()
            await asyncio.wait({first})
        if not first.cancelled():
            first.exception()  # retrieved (it was the stream's to raise)
        await self._gen.aclose()


def _note_constraint(ex: Exchange, opened: Opened) -> None:
    ex.constrained = opened.reply.headers.get(CONSTRAINED_HEADER, "") in ("tools", "tools_lazy")


def _whole_doc(opened: Opened, ex: Exchange, route: Route, *, rename: bool = True) -> dict[str, Any]:
    status = opened.reply.status
    if status != 200:
        if status in (401, 403):
            raise ApiError(502, f"Upstream {opened.upstream.name!r} refused the configured credentials ({status}).",
                           "upstream_auth")
        secret = opened.upstream.config.api_key
        body = opened.first.replace(secret.encode(), b"[redacted]") if secret else opened.first
        raise UpstreamStatus(status, body, opened.reply.headers.get("Content-Type", "application/json"),
                             opened.upstream.name, relay.secrets_of(opened.upstream), opened.upstream,
                             opened.target.model)
    try:
        doc = jsoncodec.loads(opened.first)
    except (ValueError, RecursionError):
        raise ApiError(502, f"Upstream {opened.upstream.name!r} returned a body that is not JSON.",
                       "upstream_invalid_response") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        raise ApiError(502, f"Upstream {opened.upstream.name!r} returned no choices.", "upstream_invalid_response")
    ex.usage_from(doc.get("usage"))
    ex.status = 200
    if rename:
        doc["model"] = route.requested
    return doc


def _renamed(body: bytes, old: Any, new: str) -> bytes | None:
    """The upstream's body with its model name `old` replaced by `new`, byte for byte otherwise; None when that
    takes more than replacing its one `"model":` member (the caller encodes the document instead)."""
    if old == new:
        return body
    if not isinstance(old, str):
        return None
    old_json, new_json = jsoncodec.dumps(old), jsoncodec.dumps(new)
    for sep in (b":", b": "):
        member = b'"model"' + sep + old_json
        if body.count(member) == 1:
            return body.replace(member, b'"model"' + sep + new_json)
    return None


# --- repair ------------------------------------------------------------------------------------------------------

def _failed(result: RepairResult, tool_choice: Any) -> bool:
    return bool(result.errors) or (requires_call(tool_choice) and not result.tool_calls)


def repair_kinds(result: RepairResult) -> set[str]:
    """The repairs a result reports to the client. A call the upstream wrote as text (any format) instead of a
    structured tool call was recovered, not valid: `format:<family>`."""
    kinds = {r.kind for r in result.repairs}
    if result.format and (result.tool_calls or kinds) and not any(k.startswith("format:") for k in kinds):
        kinds.add(f"format:{result.format}")
    return kinds


def _record(ex: Exchange, result: RepairResult) -> set[str]:
    """The result in the request's record; returns its repair kinds."""
    kinds = repair_kinds(result)
    ex.tool_outcome = _outcome(result, kinds)
    ex.repairs = sorted(kinds)
    ex.failures = sorted({e.kind for e in result.errors})
    return kinds


def _outcome(result: RepairResult, kinds: set[str]) -> str:
    return "repaired" if kinds and result.outcome == "valid" else result.outcome


_WORSE = {"none": 0, "valid": 1, "repaired": 2, "failed": 3}  # an answer's outcome: the worst of its choices'


def _record_choice(ex: Exchange, result: RepairResult, output: ToolOutput, first: bool) -> set[str]:
    """One choice's result in the request's record (`first`: the answer's first): every choice's repairs and
    failures, the worst outcome, and the output of the first choice that has it (the one worth capturing);
    returns its repair kinds."""
    if first:
        kinds = _record(ex, result)
        ex.tool_output = output
        return kinds
    kinds = repair_kinds(result)
    outcome = _outcome(result, kinds)
    if _WORSE[outcome] > _WORSE.get(ex.tool_outcome or "none", 0):
        ex.tool_outcome, ex.tool_output = outcome, output
    ex.repairs = sorted({*ex.repairs, *kinds})
    ex.failures = sorted({*ex.failures, *(e.kind for e in result.errors)})
    return kinds


def _invalid_error(result: RepairResult) -> ApiError:
    detail = "; ".join(f"{e.kind}: {e.detail}" if e.detail else e.kind for e in result.errors) or \
        "a tool call was required but the model made none"
    return ApiError(502, f"The model's tool call could not be made valid ({detail}).", "invalid_tool_call",
                    type="upstream_error")


def _feedback(body: dict[str, Any], result: RepairResult, raw_text: str) -> dict[str, Any]:
    """The retry request: the invalid output plus what was wrong with it."""
    problems = "; ".join(f"{e.kind}: {e.detail}" if e.detail else e.kind for e in result.errors) or \
        "a tool call was required but none was made"
    names = ", ".join(str((custom_of(t) or member(t, "function")).get("name", "?")) for t in ChatRequest.of(body).tools
                      if isinstance(t, dict))
    messages = [*body.get("messages", []), {"role": "assistant", "content": raw_text or ""},
                {"role": "user", "content": f"Your previous reply did not contain a valid tool call ({problems}). "
                 f"Reply again with one valid tool call to one of: {names}, with arguments matching its schema."}]
    return {**body, "messages": messages}


class _Choice(NamedTuple):
    """What repairing a whole answer reads from the request (as `ChatRequest` reads it)."""

    tool_choice: str | dict[str, Any] | None
    parallel: bool
    data_answer: bool
    taken_ids: Container[str]

    @classmethod
    def of(cls, body: dict[str, Any], taken: Container[str] | None = None) -> _Choice:
        choice = body.get("tool_choice")
        return cls(choice if isinstance(choice, (str, dict)) else None,
                   body.get("parallel_tool_calls", True) is not False, asks_for_data(body),
                   HistoryIds(body.get("messages")) if taken is None else taken)


def _check_message(msg: dict[str, Any], text: str | None, index: ToolIndex | None, choice: _Choice,
                   policy: RepairPolicy, reported: Reported | None) -> RepairResult:
    """The message repaired, or validated when its producer repaired it already (`reported`, see repair_owner)."""
    if reported is not None:
        return validate_message(text, index, tool_calls=msg.get("tool_calls"), tool_choice=choice.tool_choice,
                                parallel_tool_calls=choice.parallel,
                                reasoning_content=msg.get("reasoning_content"), reported=reported)
    return repair_message(
        text, index, tool_calls=msg.get("tool_calls") or None, tool_choice=choice.tool_choice,
        parallel_tool_calls=choice.parallel, format=policy.format,
        reasoning_content=msg.get("reasoning_content") or msg.get("reasoning"), mode=policy.mode,  # (as streams)
        canonical=True,  # the arguments a stream would give, piece by piece
        generic_forms=not choice.data_answer,
        keep_failed_calls=policy.on_failure == "content",  # (retry and error act on the failure instead)
        taken_ids=choice.taken_ids,
    )


def _repair_whole(doc: dict[str, Any], ex: Exchange, body: dict[str, Any], policy: RepairPolicy,
                  index: ToolIndex | None, retry_possible: bool, reported: Reported | None = None,
                  customs: frozenset[str] | None = None,
                  taken: Container[str] | None = None) -> list[str] | tuple[RepairResult, str]:
    """Repairs `doc` in place; returns the repair kinds, or (result, raw text) when a retry should be made.
    `customs`: the custom tools the request declares; a custom call (structured, or a call to one in the text)
    is repaired as a call to a function of one string `input` and goes out as the custom call it stands for.
    `taken`: the history's call ids (read from `body` when not given)."""
    kinds: set[str] = set()
    req = _Choice.of(body, taken)
    first = True
    for choice in doc["choices"]:
        msg = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, list):  # parts (Mistral's reasoning models): the text, and the thinking as reasoning
            content, thinking = answer_parts(content)
            msg = {**msg, "content": content or None}  # a new message: the answer changed (see `_messages`)
            if thinking and not (msg.get("reasoning_content") or msg.get("reasoning")):  # as `Completion.parse`
                msg["reasoning_content"] = thinking
        text = content if isinstance(content, str) else None
        names = customs
        if customs is not None and isinstance(calls := msg.get("tool_calls"), list):
            names = customs.union(c["custom"]["name"] for c in calls if isinstance(c, dict) and c.get("type") ==
                                  "custom" and isinstance(c.get("custom"), dict) and isinstance(c["custom"].get("name"),
                                                                                               str))
            msg = {**msg, "tool_calls": [call_as_function(c) for c in calls]}
        result = _check_message(msg, text, index, req, policy, reported)
        made = _record_choice(ex, result, ToolOutput(text, msg.get("tool_calls"), msg.get("reasoning_content"), body,
                                                     policy, result), first)
        first = False
        if _failed(result, req.tool_choice):
            if policy.on_failure == "retry" and retry_possible:
                return result, text or ""
            if policy.on_failure == "error":
                raise _invalid_error(result)
        new_msg = result.message()
        if "tool_calls" in new_msg and (extras := _call_extras(msg.get("tool_calls"))):
            new_msg["tool_calls"] = [{**c, "extra_content": extras[c["id"]]} if c["id"] in extras else c
                                     for c in new_msg["tool_calls"]]
        if names is not None and "tool_calls" in new_msg:
            new_msg["tool_calls"] = [call_as_custom(c, names) for c in new_msg["tool_calls"]]
        if "reasoning_content" not in msg and msg.get("reasoning") and "reasoning_content" in new_msg:
            new_msg["reasoning"] = new_msg.pop("reasoning_content")  # under the upstream's name, once
        rest = {k: v for k, v in msg.items() if k not in ("content", "tool_calls", "reasoning_content")}
        choice["message"] = {**rest, **new_msg}
        choice["finish_reason"] = _finish_reason(choice.get("finish_reason"), bool(result.tool_calls))
        kinds.update(made)
    return sorted(kinds)


def _call_extras(calls: object) -> dict[str, Any]:
    """The `extra_content` of an upstream's structured calls by their ids (Gemini 3's thought signature,
    `{"google": {"thought_signature": ...}}`, which Gemini refuses the next turn without): a repaired call keeps its
    upstream's id, and with it its `extra_content`."""
    if not isinstance(calls, list):
        return {}
    return {c["id"]: c["extra_content"] for c in calls if isinstance(c, dict) and "extra_content" in c
            and isinstance(c.get("id"), str)}


def _extra_content(deltas: tuple[dict[str, Any], ...]) -> bool:
    """Whether an upstream's call deltas carry `extra_content` (see `_Envelope.note_extras`)."""
    for d in deltas:  # noqa: SIM110 - a loop: no generator per chunk
        if "extra_content" in d:
            return True
    return False


# --- streams -----------------------------------------------------------------------------------------------------

class _Envelope:
    """A repaired stream's envelope (the upstream's id, created, system_fingerprint and service_tier, the requested
    model) and what the stream's end needs."""

    def __init__(self, requested: str) -> None:
        self.base: dict[str, Any] = {"id": "chatcmpl-agentgate", "object": "chat.completion.chunk",
                                     "created": int(time.time()), "model": requested}
        self.finish_reason: str | None = None
        # the upstream's vLLM-style hint, which stop string ended the text: passed on with the finish (the Messages
        # route reports `stop_sequence` from it)
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.calls_sent = False
        self.after_header: list[dict[str, Any]] = []
        self._head: bytes | None = None  # `base` encoded for StreamChunk (None: encode it again)
        self.refusal: list[str] = []  # the upstream's refusal, sent at the end (after the content held with it)
        self.refusal_size = 0
        self.raw_size = 0  # characters of upstream content kept as the raw text (for a re-ask or the capture)
        self.raw_text = ""  # that text, once the stream ended
        self.customs: StreamCalls | None = None  # the request's custom tools' calls (see `_CustomEnvelope`)
        # the upstream calls' `extra_content` not sent yet, by call id (or index, without one); None until an
        # upstream call carries some (see `note_extras`)
        self.extras: dict[str | int, Any] | None = None
        self._headers: dict[str, int] = {}  # the id of each call whose header went out -> its index
        self._late: list[dict[str, Any]] = []  # `extra_content` deltas for calls whose header went out before it
        self.reasoning_key: str | None = None  # "reasoning": the upstream's name for it (the repairer says
        # `reasoning_content`), kept as a repaired whole answer keeps it
        self.logprobs: StreamLogprobs | None = None  # the content's logprobs, when the request asks for them

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        if finish_reason is not None and self.stop_reason is not None:  # as a repaired whole answer keeps it
            choice["stop_reason"] = self.stop_reason
        return {**self.base, "choices": [choice]}

    def stream_chunk(self, delta: dict[str, Any]) -> StreamChunk:
        """`chunk(delta)` with its envelope encoded once for the whole stream (again only when it changes)."""
        head = self._head
        if head is None:
            head = self._head = stream_head(jsoncodec.dumps(self.base))
        return StreamChunk(head, delta)

    def chunks_of(self, events: list[ValidateEvent]) -> list[StreamChunk]:
        """The repairer's events as stream chunks."""
        head = self._head
        if head is None:
            head = self._head = stream_head(jsoncodec.dumps(self.base))
        if len(events) == 1:  # the usual prose event or argument piece: what stream_deltas makes of it
            event = events[0]
            if type(event) is ContentDelta:
                return [StreamChunk(head, {"content": event.text})] if event.text else []
            if type(event) is ToolArgsDelta:
                return [StreamChunk(head, {"tool_calls": [{"index": event.index, "function": {
                    "arguments": event.text}}]})] if event.text else []
        deltas, calls = stream_deltas(events)
        if calls:
            self.calls_sent = True
            self._headed(deltas)
        if self.reasoning_key is not None:
            deltas = [{self.reasoning_key: d["reasoning_content"]} if "reasoning_content" in d else d for d in deltas]
        if self._late:
            deltas += self._late
            self._late = []
        return [StreamChunk(head, d) for d in deltas]

    def _headed(self, deltas: list[dict[str, Any]]) -> None:
        """The calls whose header `deltas` send, noted; the `extra_content` their upstream calls carried goes on
        the header."""
        extras = self.extras
        for d in deltas:
            for call in d.get("tool_calls") or ():
                if "id" in call:
                    self._headers[call["id"]] = call["index"]
                    if extras:
                        key = call["id"] if call["id"] in extras else call["index"]
                        if key in extras:
                            call["extra_content"] = extras.pop(key)

    def note_extras(self, deltas: tuple[dict[str, Any], ...], calls: StreamRepairer | StreamValidator) -> None:
        """An upstream's call deltas with `extra_content` (Gemini 3's thought signature, which it refuses the
        next turn without): each goes on its call's header, or right after it when the header went out already
        (it is not repaired: passed on as it came). A delta without the call's id belongs to the call its index
        (or, without one, the delta before it) names: one of these `deltas`, or one `calls` (the repairer, not
        fed them yet) knows. Streams whose calls carry none never come here."""
        if self.extras is None:
            self.extras = {}
        ids: dict[Any, str] = {}  # an index -> the id of the call whose header these deltas brought there
        for d in deltas:
            index = d.get("index")
            key = index if isinstance(index, int) else None
            call_id = d.get("id")
            if isinstance(call_id, str) and call_id:
                ids[key] = call_id
            else:
                call_id = ids.get(key)
            if "extra_content" not in d:
                continue
            out: int | None = None
            if call_id is None and (found := calls.call_at(index)) is not None:  # its header came before
                out, call_id = found[0], found[1] or None
            if out is None and call_id is not None:
                out = self._headers.get(call_id)
            if out is not None:
                self._late.append({"tool_calls": [{"index": out, "extra_content": d["extra_content"]}]})
            else:
                self.extras[call_id if call_id is not None else key or 0] = d["extra_content"]

    def refused(self, text: str, max_chars: int) -> StreamChunk | None:
        """A piece of the upstream's refusal (passed on as it came: nothing in it is repaired), kept to go out
        after the content (some of which the repairer may hold); past `max_chars` kept, what was kept goes now."""
        if not text:
            return None
        self.refusal.append(text)
        self.refusal_size += len(text)
        if self.refusal_size <= max_chars:
            return None
        chunk = self.stream_chunk({"refusal": "".join(self.refusal)})
        self.refusal, self.refusal_size = [], 0
        return chunk

    def closing(self) -> list[StreamChunk]:
        """What the stream's end completes beside the repairer's last events (see `_CustomEnvelope`): the
        `extra_content` of calls that still waits."""
        late, self._late = self._late, []
        return [self.stream_chunk(d) for d in late]

    def absorb(self, doc: dict[str, Any]) -> None:
        """The upstream chunk's envelope members and usage (which the reader already counted: `UpstreamReader`)."""
        base = self.base
        for k in relay.ENVELOPE_KEYS:
            if k in doc:
                value = doc[k]
                if k not in base or base[k] != value or type(base[k]) is not type(value):
                    base[k] = value
                    self._head = None
        usage = doc.get("usage")
        if usage:
            self.usage = usage


class _CustomEnvelope(_Envelope):
    """The envelope of a stream whose request declares custom tools: the upstream's custom call deltas go to the
    repairer as function calls of one string `input`, and its calls to a custom tool come out as custom calls
    (`custom_tools.StreamCalls`). Streams of requests that declare none never pay for it."""

    def __init__(self, requested: str, customs: frozenset[str]) -> None:
        super().__init__(requested)
        self.customs = self.calls = StreamCalls(customs)

    def chunks_of(self, events: list[ValidateEvent]) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for chunk in super().chunks_of(events):
            if "tool_calls" in chunk.delta:
                out += [StreamChunk(chunk.head, d) for d in self.calls.downstream(chunk.delta)]
            else:
                out.append(chunk)
        return out

    def closing(self) -> list[StreamChunk]:
        return [*[self.stream_chunk(d) for d in self.calls.flush()], *super().closing()]


async def _stream_chunks(ctx: RequestContext, body: dict[str, Any], repairing: bool, attempts: int,
                         index: ToolIndex | None = None, raw_body: bytes = b"",
                         customs: frozenset[str] | None = None,
                         refit: Refit | None = None) -> AsyncGenerator[Items, None]:
    ex, route, policy, limits = ctx.exchange, ctx.route, ctx.repair, ctx.limits
    for attempt in range(attempts):
        opened = await dispatch(ctx, _request(ctx, body, raw_body if attempt == 0 else b"", True, refit))
        try:
            if opened.reply.status != 200:
                _whole_doc(opened, ex, route)  # raises the right error
            _note_constraint(ex, opened)
            ex.status = 200
            env = _Envelope(route.requested) if customs is None else _CustomEnvelope(route.requested, customs)
            reader = UpstreamReader(opened, ex, ctx.metrics, limits.max_upstream_event_bytes)
            # the provider's secrets out of what goes to the client, however repair decoded or joined them
            gate = relay.gate_for(reader.redactor.secrets)
            if not repairing:
                docs = _absorbed(reader, env, route.requested)
                async with aclosing(docs if gate is None else relay.gated(docs, gate)) as batches:
                    async for batch in batches:
                        yield batch
                return
            checker = _Checker(env, policy, body.get("tool_choice"), attempt < attempts - 1)
            if body.get("logprobs") is True:  # (asked for: the chunks of other requests never look for them)
                env.logprobs = StreamLogprobs(limits.max_stream_repair_chars)
            items = _repaired(reader, env, ex, body, policy, index, limits.max_stream_repair_chars, checker,
                              keep_raw=limits.capture is not None,
                              engine=engine_repaired(opened.upstream.kind, opened.reply.headers),
                              taken=ctx.taken_ids(body))
            if env.logprobs is not None:
                items = with_logprobs(items, env.logprobs, env.base)
            async with aclosing(items if gate is None else relay.gated(items, gate)) as batches:
                async for batch in batches:
                    if isinstance(batch, tuple):  # a re-ask: the failed result and its raw text
                        body = _feedback(body, *batch)
                        _reasked(ctx, opened)
                        break
                    yield batch
                else:
                    return
        finally:
            await opened.close()


async def _absorbed(reader: UpstreamReader, env: _Envelope, model: str) -> AsyncGenerator[Items, None]:
    """An unrepaired stream's chunk documents, their envelopes taken, under the client's model name."""
    async for docs in reader.docs():
        for doc in docs:
            env.absorb(doc)
            doc["model"] = model
        yield cast(Items, docs)


class _Checker:
    """The repair policy applied to a repaired stream: a role chunk before the first content, what the result
    completes sent with the stream's end, a failed result refused (an error before the first byte, a terminal
    error event after it) or handed back for a re-ask while nothing was sent."""

    __slots__ = ("env", "policy", "retry_possible", "sent", "tool_choice")

    def __init__(self, env: _Envelope, policy: RepairPolicy, tool_choice: Any, retry_possible: bool) -> None:
        self.env = env
        self.policy = policy
        self.tool_choice = tool_choice
        self.retry_possible = retry_possible
        self.sent = False

    def batch(self, items: Items) -> Items:
        """What one upstream read made (not empty), the role chunk in front of the first."""
        if not self.sent:
            self.sent = True
            items.insert(0, self.env.stream_chunk({"role": "assistant", "content": ""}))
        return items

    def end(self, result: RepairResult, final: Items) -> Items | tuple[RepairResult, str]:
        """The stream's last items (`final`: what the result completes, then the finish and usage chunks), or
        (result, raw text) for a re-ask; raises ApiError when the result is refused."""
        env, policy = self.env, self.policy
        if _failed(result, self.tool_choice) and policy.on_failure != "content":
            if not self.sent and policy.on_failure == "retry" and self.retry_possible:
                return result, env.raw_text
            if policy.on_failure == "error":  # before the first byte: an error response;
                raise _invalid_error(result)  # after it: a terminal error event
        tail = final if self.sent else [env.stream_chunk({"role": "assistant", "content": ""}), *final]
        finish = env.chunk({}, _finish_reason(env.finish_reason, bool(result.tool_calls) or env.calls_sent))
        if env.after_header:
            finish["agentgate"] = {"tool_call_failures": env.after_header}
        tail.append(finish)
        if env.usage is not None:
            tail.append({**env.base, "choices": [], "usage": env.usage})
        return tail


def _finish_reason(upstream: str | None, calls: bool) -> str:
    """A stream cut by max_tokens says "length" whatever was made of it, like OpenAI's own; otherwise
    "tool_calls" when calls were made."""
    if upstream == "length":
        return "length"
    if calls:
        return "tool_calls"
    return "stop" if upstream in (None, "tool_calls") else upstream


def _text(repairer: StreamRepairer | StreamValidator, text: str, env: _Envelope, raw: list[str] | None,
          max_chars: int) -> list[ValidateEvent]:
    """A content-only chunk's text (see `UpstreamReader.docs`) fed, when the raw text or the logprobs' text is
    kept (it came without logprobs)."""
    if env.logprobs is not None:
        env.logprobs.fed(text)
    return _content(repairer, text, env, raw, max_chars)


def _content(repairer: StreamRepairer | StreamValidator, text: str, env: _Envelope, raw: list[str] | None,
             max_chars: int) -> list[ValidateEvent]:
    if raw is not None and env.raw_size < max_chars:
        raw.append(text)
        env.raw_size += len(text)
    return repairer.feed(text)


def _fed(repairer: StreamRepairer | StreamValidator, part: ChunkPart, env: _Envelope,
         raw: list[str] | None, max_chars: int) -> list[ValidateEvent]:
    """One upstream chunk part through the repairer."""
    if part.finish_reason:
        env.finish_reason = part.finish_reason
    if part.stop_reason is not None:
        env.stop_reason = part.stop_reason
    events: list[ValidateEvent] = []
    if part.reasoning:
        if part.named_reasoning and env.reasoning_key is None:  # (named: `reasoning` came, a string or not)
            env.reasoning_key = "reasoning"
        events += repairer.feed_reasoning(part.reasoning)
    if part.content:
        events += _content(repairer, part.content, env, raw, max_chars)
    if part.tool_deltas:
        if env.extras is not None or _extra_content(part.tool_deltas):
            env.note_extras(part.tool_deltas, repairer)
        customs = env.customs
        events += repairer.feed_tool_calls(part.tool_deltas if customs is None else customs.upstream(part.tool_deltas))
    return events


def _whole_parts(docs: list[Any], max_chars: int) -> ChunkPart | None:
    """A whole stream's (its one read's items) reasoning, content and tool-call fragments in order, each kind
    joined into one part to be fed once (the repairer's result does not depend on how its input is cut), with its
    finish reason (and stop string hint). None when its text is
    past `max_chars`: the stream then goes piece by piece, as any stream, and the repairer's bound applies there
    (past it, the rest passes through unrepaired; held to the end, calls past the bound would be dropped)."""
    content: list[str] = []
    reasoning: list[str] = []
    deltas: list[dict[str, Any]] = []
    refusal: list[str] = []
    details: list[Any] = []
    audio: list[Any] = []
    annotations: list[Any] = []
    named = False
    finish: str | None = None
    hint: str | None = None
    size = 0
    for doc in docs:
        kind = type(doc)
        if kind is str:
            content.append(doc)
            size += len(doc)
            continue
        if kind is ArgsPiece:
            deltas.append(doc.delta)
            size += len(doc.text)
            continue
        for part in chunk_parts(doc):
            finish = part.finish_reason or finish
            hint = part.stop_reason if part.stop_reason is not None else hint
            if part.reasoning:
                reasoning.append(part.reasoning)
                size += len(part.reasoning)
                named = named or part.named_reasoning
            if type(part.details) is list:
                details += part.details
            if part.content:
                content.append(part.content)
                size += len(part.content)
            if part.tool_deltas:
                deltas += part.tool_deltas
                size += sum(_args_size(d) for d in part.tool_deltas)
            if part.refusal:
                refusal.append(part.refusal)
            if part.audio:
                audio += part.audio
            annotations += part.annotations
    if size > max_chars:
        return None
    return ChunkPart("".join(reasoning), "".join(content), tuple(deltas), finish, hint, "".join(refusal), named,
                     details or None, tuple(audio), annotations=tuple(annotations))


def _fed_whole(repairer: StreamRepairer | StreamValidator, part: ChunkPart, docs: list[Any], env: _Envelope,
               raw: list[str] | None, max_chars: int) -> list[ValidateEvent]:
    """A whole stream through the repairer: its envelopes taken, its one joined part (from `docs`) fed (the
    logprobs, when asked for, noted piece by piece: each piece's entries are its own)."""
    for doc in docs:
        if type(doc) is dict:
            env.absorb(doc)
    if env.logprobs is not None:
        _whole_logprobs(env.logprobs, docs)
    return _fed(repairer, part, env, raw, max_chars)


def _whole_logprobs(logprobs: StreamLogprobs, docs: list[Any]) -> None:
    for doc in docs:
        kind = type(doc)
        if kind is str:
            logprobs.fed(doc)
        elif kind is dict:
            for part in chunk_parts(doc):
                logprobs.part(part)


def _args_size(delta: dict[str, Any]) -> int:
    fn = delta.get("function")
    args = fn.get("arguments") if isinstance(fn, dict) else None
    return len(args) if isinstance(args, str) else 0


async def _repaired(reader: UpstreamReader, env: _Envelope, ex: Exchange, body: dict[str, Any], policy: RepairPolicy,
                    index: ToolIndex | None, max_chars: int, checker: _Checker, keep_raw: bool = False,
                    engine: bool = False, taken: Container[str] | None = None,
                    ) -> AsyncGenerator[Items | tuple[RepairResult, str], None]:
    """Upstream chunks through the StreamRepairer: prose streams at once, <think> text as reasoning, and a
    call's header and arguments as they are generated (with on_failure "content"; "retry" and "error" hold calls
    to the end, where they can still be refused or re-asked; so does a stream whose first read held all of it,
    fed once per kind, see `_fed_whole`). Yields what each upstream read made (a non-empty list), then what
    `checker` makes of the result: the stream's last items, or (result, raw text) for a re-ask while nothing was
    sent. An `engine` reply is validated, not repaired again (see repair_owner). `taken`: the history's call ids."""
    repairer: StreamRepairer | StreamValidator | None = None
    # the raw text: for a re-ask, or the capture ring
    raw: list[str] | None = [] if keep_raw or policy.on_failure == "retry" else None
    logprobs = env.logprobs
    plain = raw is None and logprobs is None  # a text is only fed
    async for docs in reader.docs(texts=True):
        if repairer is None:
            # the first read held the whole stream (nginx's single write, a buffering gateway, a loaded router):
            # nothing is gained by sending calls piece by piece, and it is repaired as one answer
            parts = _whole_parts(docs, max_chars) if reader.done else None
            repairer = stream_checker(engine, index, ChatRequest.of(body, taken), policy, max_chars,
                                      whole=parts is not None)
            if parts is not None and not engine:
                if env.customs is not None and parts.tool_deltas:
                    parts = parts._replace(tool_deltas=(*env.customs.upstream(parts.tool_deltas),
                                                        *env.customs.close()))
                env.refused(parts.refusal, max_chars)
                made = env.chunks_of(_fed_whole(repairer, parts, docs, env, raw, max_chars))
                if parts.details is not None:  # (not repaired: as they came, one delta as the other kinds)
                    made.append(env.stream_chunk({"reasoning_details": parts.details}))
                if parts.audio:  # (likewise, each as it came)
                    made += [env.stream_chunk({"audio": a}) for a in parts.audio]
                if parts.annotations:  # (likewise, all in one delta)
                    made.append(env.stream_chunk({"annotations": list(parts.annotations)}))
                if made:
                    yield checker.batch([*made])
                continue
        out: Items = []
        for doc in docs:
            if type(doc) is str:  # a content-only chunk with the envelope already taken (see UpstreamReader.docs)
                if doc and (events := repairer.feed(doc) if plain else _text(repairer, doc, env, raw, max_chars)):
                    out += env.chunks_of(events)
                continue
            if type(doc) is ArgsPiece:  # likewise an argument-only tool-call chunk: its call and piece
                events = repairer.feed_arguments(doc.call, doc.text) if type(repairer) is StreamRepairer \
                    else repairer.feed_tool_calls((doc.delta,))
                if events:
                    out += env.chunks_of(events)
                continue
            env.absorb(doc)
            if engine and isinstance(repairer, StreamValidator) and (reported := chunk_report(doc)) is not None:
                repairer.report(reported)
            for part in chunk_parts(doc):
                if logprobs is not None:
                    logprobs.part(part)
                events = _fed(repairer, part, env, raw, max_chars)
                if events:
                    out += env.chunks_of(events)
                if part.details is not None and type(part.details) is list and part.details:
                    # OpenRouter's reasoning_details: not repaired, passed on as they came
                    out.append(env.stream_chunk({"reasoning_details": part.details}))
                if part.audio:  # an audio answer's pieces (its transcript is not repaired): as they came
                    out += [env.stream_chunk({"audio": a}) for a in part.audio]
                if part.annotations:  # a searching model's citations (of text sent or held): as they came
                    out.append(env.stream_chunk({"annotations": list(part.annotations)}))
                if part.refusal and (refusal := env.refused(part.refusal, max_chars)):
                    out.append(refusal)
        if out:
            yield checker.batch(out)
    if repairer is None:
        repairer = stream_checker(engine, index, ChatRequest.of(body, taken), policy, max_chars, whole=True)
    last = repairer.finish() if env.customs is None else \
        [*repairer.feed_tool_calls(env.customs.close()), *repairer.finish()]
    final: Items = [*env.chunks_of(last), *env.closing()]
    if env.refusal:  # after all of the content, which the repairer may have held until now
        final.append(env.stream_chunk({"refusal": "".join(env.refusal)}))
    _finished(repairer, env, ex, body, policy, raw)
    yield checker.end(repairer.result, final)


def _finished(repairer: StreamRepairer | StreamValidator, env: _Envelope, ex: Exchange, body: dict[str, Any],
              policy: RepairPolicy, raw: list[str] | None) -> None:
    """The finished stream's result recorded (outcome, repairs, failures after a header, the raw text)."""
    result = repairer.result
    _record(ex, result)
    if repairer.after_header:
        env.after_header = [issue.as_dict() for issue in repairer.after_header]
        ex.failures = sorted({*ex.failures, *(i.kind for i in repairer.after_header)})
        if ex.tool_outcome != "failed":
            ex.tool_outcome = "failed"
        log.warning("stream %s: %s", ex.request_id, "; ".join(f"{i.kind}: {i.detail}" for i in repairer.after_header))
    env.raw_text = "".join(raw or ())
    ex.tool_output = ToolOutput(env.raw_text, None, None, body, policy, result)  # streamed call fragments: not kept
