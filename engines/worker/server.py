"""The engine worker's HTTP side: an OpenAI-compatible aiohttp app in front of the MLX scheduler.

Endpoints: POST /v1/chat/completions, POST /v1/completions (both streaming and not), GET /v1/models,
GET /health (200 once the model is loaded, 503 before), GET /stats (JSON counters).
Chat output goes through the `repair` package, which turns the model's tool-call markup into OpenAI
`tool_calls`; `<think>` blocks become `reasoning_content`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import os
import socket
import stat
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from engines.wire import REPAIR_HEADER, REPAIRED_HEADER, REPAIRS_HEADER, REPORT_MEMBER, SSE_DONE, WireError, sse_data
from engines.worker import blas
from engines.worker.errors import bad_request, error_response
from engines.worker.guided import HEADER as CONSTRAINED_HEADER
from engines.worker.guided import OPT_OUT_HEADER, Guide, Guided
from engines.worker.matching import is_panic
from engines.worker.params import ChatRequest, CompletionRequest, GenerationParams, parse_chat, parse_completion
from engines.worker.scheduler import (
    Delta,
    Failed,
    Finished,
    Scheduler,
    SequenceHandle,
    SequenceSpec,
    Started,
    default_loader,
)
from engines.worker.settings import WorkerSettings as WorkerSettings  # re-exported: the worker's API
from engines.worker.templates import ChatFormatter, RenderedPrompt
from engines.worker.toolindex import ToolIndexes
from repair import RepairIssue, RepairResult, StreamRepairer, repair_message
from repair.deltas import stream_deltas
from repair.incremental import canonical_arguments

log = logging.getLogger("agentgate.engine")

CONTAINERS_CHECKED_OVER = 1 << 20  # bytes: a smaller body is not counted (its parse is bounded by its size)
# Levels of objects and arrays a request body may have. Python 3.11's parser stopped near there (the recursion
# limit, which C code shared); 3.12 and later give C code its own limit and parse bodies ten times deeper.
MAX_BODY_DEPTH = 1000


@dataclass
class WorkerState:
    settings: WorkerSettings
    scheduler: Scheduler
    started_at: float = field(default_factory=time.time)
    formatter: ChatFormatter | None = None
    load_error: str | None = None
    guide: Guide | None = None  # None: constrained decoding is off (or unavailable for this tokenizer)
    tool_indexes: ToolIndexes = field(default_factory=ToolIndexes)  # validators reused across requests

    @property
    def name(self) -> str:
        return self.settings.served_name

    def require_ready(self) -> ChatFormatter:
        if self.load_error is not None:
            raise WireError(503, f"the model failed to load: {self.load_error}", "model_load_failed")
        if self.formatter is None or not self.scheduler.ready:
            if self.formatter is not None:
                raise WireError(503, "the engine has stopped", "engine_stopped")
            raise WireError(503, "the model is still loading", "model_loading")
        return self.formatter


WORKER = web.AppKey("agentgate_worker", WorkerState)


# -- helpers ---------------------------------------------------------------------------------------------------
def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("the request body is empty; send a JSON object", code="invalid_json")
    _check_containers(raw, request.app[WORKER].settings.max_body_containers)
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as exc:  # (json.JSONDecodeError is a ValueError)
        raise bad_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        body = _TOO_DEEP
    if body is _TOO_DEEP or (raw.count(b"[") + raw.count(b"{") > MAX_BODY_DEPTH and _deeper(body, MAX_BODY_DEPTH)):
        raise bad_request("the request body is nested too deep", code="invalid_json")
    return body


_TOO_DEEP = object()


def _deeper(value: Any, limit: int) -> bool:
    """Whether `value` has objects or arrays nested more than `limit` levels (itself the first); walked without
    recursion, as the parser's limit is the interpreter's."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if level > limit:
            return True
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity, which Python's parser reads and JSON has not (the router refuses them too)."""
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    """A number past a double, which Python's parser reads as infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} overflows a double")
    return value


def _check_containers(raw: bytes, limit: int) -> None:
    """A 413 for a body over 1 MiB with more objects and arrays than `limit`, counted from its brackets before it is
    parsed: the parse runs on the event loop and holds the GIL (in a thread too), so every stream waits for it (1.8M
    messages, 60 MB: seconds)."""
    if len(raw) <= CONTAINERS_CHECKED_OVER:
        return
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > limit:
        raise WireError(413, f"the request body has {containers} JSON objects and arrays (brackets), over the limit "
                             f"of {limit} (--max-body-containers) for bodies over 1 MiB", "request_too_large")


def _room(state: WorkerState, n: int, param: str) -> int:
    """How many tokens the context leaves after a prompt of `n`; a 400 when it leaves none. A `max_tokens` past it
    is cut to it, not refused: agent clients ask for output limits past a local model's context (Claude Code's
    default is 32,000), and llama.cpp, Ollama and mlx_lm.server cut it too (OpenAI and vLLM answer 400)."""
    limit = state.scheduler.max_context
    if n == 0:
        raise bad_request("the prompt is empty", param=param)
    if n >= limit:
        raise WireError(
            400,
            f"This model's maximum context length is {limit} tokens, but the prompt has {n} tokens.",
            "context_length_exceeded",
            param=param,
        )
    return limit - n


def _spec(state: WorkerState, tokens: list[int], gen: GenerationParams, *, think: tuple[str, str] | None = None,
          reasoning: bool = False, param: str = "messages", processors: list[Any] | None = None,
          continued: bool = False) -> SequenceSpec:
    room = _room(state, len(tokens), param)
    max_tokens = min(gen.max_tokens or room, room)
    return SequenceSpec(tokens, max_tokens, gen.sampling, gen.stop, think, reasoning, list(processors or []),
                        continued)


def _finishing(choice: dict[str, Any], stop: str | None) -> dict[str, Any]:
    """The finishing choice with the stop string that ended the text (`Finished.stop`) as `stop_reason`, as vLLM
    reports it (only then: after an EOS or at the token limit the choice is as before); the router's Messages
    route answers `stop_reason: "stop_sequence"` with it."""
    if stop is not None:
        choice["stop_reason"] = stop
    return choice


def _usage(fin: Finished) -> dict[str, Any]:
    return {
        "prompt_tokens": fin.prompt_tokens,
        "completion_tokens": fin.completion_tokens,
        "total_tokens": fin.prompt_tokens + fin.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": fin.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": fin.reasoning_tokens},
    }


async def _events(handle: SequenceHandle) -> AsyncGenerator[Started | Delta | Finished | Failed, None]:
    while True:
        for event in await handle.next_events():
            yield event
            if isinstance(event, (Finished, Failed)):
                return


async def _first_event(handle: SequenceHandle) -> list[Any]:
    """Wait until the sequence is admitted (or refused) so that a refusal can still be a plain HTTP error."""
    events = await handle.next_events()
    for event in events:
        if isinstance(event, Failed):
            raise WireError(event.status, event.message, event.code)
    return events


async def _collect(handle: SequenceHandle, first: list[Any]) -> tuple[str, str, Finished]:
    content: list[str] = []
    reasoning: list[str] = []
    async with contextlib.aclosing(_chain(list(first), handle)) as events:
        async for event in events:
            if isinstance(event, Delta):
                for piece in event.pieces:
                    (reasoning if piece.kind == "reasoning" else content).append(piece.text)
            elif isinstance(event, Failed):
                raise WireError(event.status, event.message, event.code)
            elif isinstance(event, Finished):
                return "".join(content), "".join(reasoning), event
    raise WireError(500, "the sequence ended without a result", "generation_failed")


async def _chain(first: list[Any], handle: SequenceHandle) -> AsyncGenerator[Any, None]:
    """The events already read (`first`), then the sequence's next ones. Whoever reads it closes it (aclosing), as
    it closes `_events`: one left suspended, by a client gone mid-stream or a return at Finished, waits for the
    garbage collector, whose finaliser runs its aclose() on the event loop during some later request."""
    for event in first:
        yield event
        if isinstance(event, (Finished, Failed)):
            return
    async with contextlib.aclosing(_events(handle)) as rest:
        async for event in rest:
            yield event


class ChunkEnvelope:
    """The bytes of a stream's non-final chunks, encoded once per stream: per token only the changing member (a
    chat delta, a completion's text) is encoded and put between them. `choice` is the chunk's one choice with
    `SLOT` where that member goes; `encode(value)` gives the same bytes as `sse_data` of the whole chunk."""

    SLOT = "\x00agentgate-slot\x00"

    def __init__(self, base: dict[str, Any], choice: dict[str, Any]) -> None:
        marked = sse_data({**base, "choices": [choice]})
        self._head, found, self._tail = marked.rpartition(_dumps(self.SLOT).encode())
        if not found:
            raise ValueError("the choice has no SLOT member")

    def encode(self, value: Any) -> bytes:
        return self._head + _dumps(value).encode() + self._tail


# -- handlers --------------------------------------------------------------------------------------------------
async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[WORKER]
    body = await _json_body(request)
    formatter = state.require_ready()
    req = parse_chat(body, state.scheduler.vocab_size)
    loop = asyncio.get_running_loop()
    rendered = await loop.run_in_executor(None, _render, formatter, req)
    _room(state, len(rendered.tokens), "messages")  # refused before any grammar is compiled for it
    guided = await _guided(request, state, req, rendered.reasoning)
    spec = _spec(state, rendered.tokens, req.gen, think=formatter.think, reasoning=rendered.reasoning,
                 processors=guided.processors, continued=req.continue_final)
    if guided.processor is not None:
        guided.processor.budget = spec.max_tokens
    handle = state.scheduler.submit(spec)
    try:
        first = await _first_event(handle)
        if req.gen.stream:
            return await _stream_chat(request, state, req, handle, first, formatter.tool_format, guided)
        return await _complete_chat(state, req, handle, first, formatter.tool_format, _repair_mode(request), guided,
                                    report=_reports(request, req))
    finally:
        state.scheduler.cancel(handle)


def _render(formatter: ChatFormatter, req: ChatRequest) -> RenderedPrompt:
    return formatter.render_chat(req.messages, req.tools, req.template_kwargs, generation=req.generation_prompt,
                                 continue_final=req.continue_final)


async def _guided(request: web.Request, state: WorkerState, req: ChatRequest, reasoning_open: bool) -> Guided:
    """The request's constraint: off when the worker or the request (`x-agentgate-constrain: off`) says so."""
    if state.guide is None or request.headers.get(OPT_OUT_HEADER, "").lower() == "off":
        return Guided("off")
    return await state.guide.for_request(req, reasoning_open)


def _repair_mode(request: web.Request) -> str:
    """`x-agentgate-repair: off` (a client or a model entry turned repair off) or `detect` (the entry's repair
    mode): promote only calls that were already valid, repair nothing."""
    return "detect" if request.headers.get(REPAIR_HEADER, "").lower() in ("off", "detect") else "repair"


def _reports(request: web.Request, req: ChatRequest) -> bool:
    """Whether the reply carries the `REPORT_MEMBER` report: not without tools (the router passes such replies on
    as they are) and not with repair off (nobody on the way reads it, so the client would see it)."""
    return bool(req.tools) and request.headers.get(REPAIR_HEADER, "").lower() != "off"


async def _complete_chat(state: WorkerState, req: ChatRequest, handle: SequenceHandle, first: list[Any],
                         family: str, mode: str = "repair", guided: Guided | None = None, *,
                         report: bool = True) -> web.Response:
    content, reasoning, fin = await _collect(handle, first)
    result = repair_message(
        content,
        state.tool_indexes.of(req.tools),
        tool_choice=req.tool_choice,
        parallel_tool_calls=req.parallel_tool_calls,
        format=family,
        reasoning_content=reasoning or None,
        mode=mode,
        generic_forms=not req.data_answer,  # a JSON answer asked for is data (repair_message)
    )
    for call in result.tool_calls:  # as a stream gives them (see repair.deltas), so the router passes them on
        call["function"]["arguments"] = canonical_arguments(call["function"]["arguments"])
    message = result.message()
    finish = _finish_reason(fin.reason, bool(result.tool_calls))
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": state.name,
        "choices": [_finishing({"index": 0, "message": message, "finish_reason": finish, "logprobs": None}, fin.stop)],
        "usage": _usage(fin),
    }
    if result.errors and report and req.tools:
        body[REPORT_MEMBER] = {"tool_call_failures": [e.as_dict() for e in result.errors]}
    headers = {"x-agentgate-tool-calls": result.outcome, CONSTRAINED_HEADER: _label(guided), REPAIRED_HEADER: mode}
    kinds = _repair_kinds(result)
    if kinds:
        headers[REPAIRS_HEADER] = ",".join(kinds)
    return web.Response(text=_dumps(body), content_type="application/json", headers=headers)


def _finish_reason(reason: str, calls: bool) -> str:
    """Generation cut by max_tokens says "length" whatever was made of it (a call recovered, or one whose header
    went out and that the cut broke), as the router says when it repairs, and OpenAI's own; else "tool_calls" when
    calls were made."""
    if reason == "length":
        return reason
    return "tool_calls" if calls else reason


def _repair_kinds(result: RepairResult) -> list[str]:
    """What the engine reports it repaired: the text format of its own model is no repair."""
    return sorted({r.kind for r in result.repairs if not r.kind.startswith("format:")})


def _report(result: RepairResult, after_header: list[RepairIssue]) -> dict[str, Any]:
    """A stream's repair report, for its last chunk (see engines.wire)."""
    report: dict[str, Any] = {}
    kinds = _repair_kinds(result)
    if kinds:
        report["repairs"] = kinds
    if result.errors or after_header:
        report["tool_call_failures"] = [e.as_dict() for e in (*result.errors, *after_header)]
    return report


def _label(guided: Guided | None) -> str:
    if guided is None:
        return "off"
    proc = guided.processor
    if proc is not None and proc.state.broken is not None:
        return "broken"
    return guided.label


async def _stream_chat(request: web.Request, state: WorkerState, req: ChatRequest, handle: SequenceHandle,
                       first: list[Any], family: str, guided: Guided | None = None) -> web.StreamResponse:
    mode = _repair_mode(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       CONSTRAINED_HEADER: _label(guided), REPAIRED_HEADER: mode})
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": state.name}
    envelope = ChunkEnvelope(base, {"index": 0, "delta": ChunkEnvelope.SLOT, "finish_reason": None, "logprobs": None})

    def chunk(delta: dict[str, Any], finish: str | None = None, report: dict[str, Any] | None = None,
              stop: str | None = None) -> bytes:
        if finish is None and not report:
            return envelope.encode(delta)
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        doc = {**base, "choices": [_finishing(choice, stop)]}
        if report:
            doc[REPORT_MEMBER] = report
        return sse_data(doc)

    # tool calls stream as they are generated (header first, then arguments), as the router streams them
    repairer = StreamRepairer(state.tool_indexes.of(req.tools), tool_choice=req.tool_choice,
                              parallel_tool_calls=req.parallel_tool_calls, format=family, mode=mode, incremental=True,
                              generic_forms=not req.data_answer)
    calls_sent = False

    def delta(event: Delta) -> bytes:
        nonlocal calls_sent
        out: list[Any] = []
        for piece in event.pieces:
            out += repairer.feed_reasoning(piece.text) if piece.kind == "reasoning" else repairer.feed(piece.text)
        deltas, calls = stream_deltas(out)
        calls_sent = calls_sent or calls
        return b"".join(chunk(d) for d in deltas)

    def finished(event: Finished) -> bytes:
        deltas, calls = stream_deltas(repairer.finish())
        finish = _finish_reason(event.reason, calls_sent or calls)
        deltas.append({})  # the last chunk: finish_reason; the report goes with the first of these
        report = _report(repairer.result, repairer.after_header) if _reports(request, req) else None
        last = len(deltas) - 1
        data = b"".join(chunk(d, finish if i == last else None, report if i == 0 else None,
                              event.stop if i == last else None)
                        for i, d in enumerate(deltas))
        if req.gen.include_usage:
            data += sse_data({**base, "choices": [], "usage": _usage(event)})
        return data

    return await _relay(request, resp, _chain(first, handle), delta, finished, "a chat completion",
                        opening=chunk({"role": "assistant", "content": ""}))


async def completions(request: web.Request) -> web.StreamResponse:
    state = request.app[WORKER]
    body = await _json_body(request)
    formatter = state.require_ready()
    req: CompletionRequest = parse_completion(body, state.scheduler.vocab_size)
    if isinstance(req.prompt, str):
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(None, formatter.encode_text, req.prompt)
    else:
        tokens = list(req.prompt)
    spec = _spec(state, tokens, req.gen, param="prompt")
    handle = state.scheduler.submit(spec)
    try:
        first = await _first_event(handle)
        base = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": state.name}
        if req.gen.stream:
            return await _stream_completion(request, req, handle, first, base)
        text, _, fin = await _collect(handle, first)
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": fin.reason}
        payload = {**base, "choices": [_finishing(choice, fin.stop)], "usage": _usage(fin)}
        return web.Response(text=_dumps(payload), content_type="application/json")
    finally:
        state.scheduler.cancel(handle)


async def _stream_completion(request: web.Request, req: CompletionRequest, handle: SequenceHandle, first: list[Any],
                             base: dict[str, Any]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    envelope = ChunkEnvelope(base, {"index": 0, "text": ChunkEnvelope.SLOT, "logprobs": None, "finish_reason": None})

    def chunk(text: str, fin: Finished | None = None) -> bytes:
        if fin is None:
            return envelope.encode(text)
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": fin.reason}
        return sse_data({**base, "choices": [_finishing(choice, fin.stop)]})

    def delta(event: Delta) -> bytes:
        text = "".join(p.text for p in event.pieces)
        return chunk(text) if text else b""

    def finished(event: Finished) -> bytes:
        data = chunk("", event)
        if req.gen.include_usage:
            data += sse_data({**base, "choices": [], "usage": _usage(event)})
        return data

    return await _relay(request, resp, _chain(first, handle), delta, finished, "a completion")


async def _relay(request: web.Request, resp: web.StreamResponse, events: AsyncGenerator[Any, None],
                 delta: Callable[[Delta], bytes], finished: Callable[[Finished], bytes], what: str, *,
                 opening: bytes = b"") -> web.StreamResponse:
    """The SSE response's headers and `opening` (a chat's role chunk), then a sequence's events (`delta` and
    `finished` make each one's bytes), then [DONE]: a failure the scheduler reports as its error event, and one
    raised after the headers were sent (they cannot become a status any more) as an internal_error event, so a
    client never waits on a stream without end. `events` is closed before it returns, however it ends.
    A client that went away is no error, whenever it left: a write to its closing connection (the headers', the
    opening's or a chunk's) raises ClientConnectionResetError when it comes before aiohttp cancels the handler,
    which aiohttp would log with its traceback (relayed to the router's log line by line)."""
    async with contextlib.aclosing(events):
        try:
            await resp.prepare(request)
            if opening:
                await resp.write(opening)
            tail = await _write_events(resp, events, delta, finished, what)
            await resp.write(tail + SSE_DONE)
            await resp.write_eof()
        except ConnectionResetError:
            log.debug("streaming %s: the client went away", what)
    return resp


async def _write_events(resp: web.StreamResponse, events: AsyncIterator[Any], delta: Callable[[Delta], bytes],
                        finished: Callable[[Finished], bytes], what: str) -> bytes:
    """Write each event; what is left to write before [DONE]: nothing, or the error event of a failure raised."""
    try:
        async for event in events:
            if isinstance(event, Delta):
                data = delta(event)
                if data:
                    await resp.write(data)
            elif isinstance(event, Failed):
                await resp.write(WireError(event.status, event.message, event.code).sse_event())
                break
            elif isinstance(event, Finished):
                await resp.write(finished(event))
                break
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # headers are sent: end the stream with an error event
        log.exception("streaming %s failed", what)
        return _internal_error(exc).sse_event()
    return b""


def _internal_error(exc: Exception) -> WireError:
    return WireError(500, f"internal error: {type(exc).__name__}", "internal_error")


async def models(request: web.Request) -> web.Response:
    state = request.app[WORKER]
    entry = {"id": state.name, "object": "model", "created": int(state.started_at), "owned_by": "agentgate"}
    model_id = request.match_info.get("model_id")
    if model_id is not None:
        if model_id != state.name:
            raise WireError(404, f"model {model_id!r} is not served here", "model_not_found", param="model")
        return web.json_response(entry)
    return web.json_response({"object": "list", "data": [entry]})


async def health(request: web.Request) -> web.Response:
    state = request.app[WORKER]
    if state.load_error is not None:
        return web.json_response({"status": "error", "error": state.load_error}, status=503)
    if state.formatter is None:
        return web.json_response({"status": "loading", "model": state.name}, status=503)
    if not state.scheduler.alive:
        return web.json_response({"status": "stopped", "model": state.name}, status=503)
    return web.json_response({"status": "ok", "model": state.name, "blas": blas.current().blas})


async def stats(request: web.Request) -> web.Response:
    state = request.app[WORKER]
    sched = state.scheduler
    body: dict[str, Any] = {
        "model": state.name,
        "ready": state.formatter is not None and sched.alive,
        "uptime_s": round(time.time() - state.started_at, 3),
        "load_s": None if sched.load_seconds is None else round(sched.load_seconds, 3),
        "max_context": sched.max_context if sched.loaded is not None else None,
        "tool_format": state.formatter.tool_format if state.formatter is not None else None,
        "constrain": state.guide.snapshot() if state.guide is not None else None,
        "blas": blas.current().as_json(),
    }
    body.update(sched.snapshot())
    return web.json_response(body)


# -- app ---------------------------------------------------------------------------------------------------------
@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except WireError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[WORKER].settings.max_body_bytes
        too_large = WireError(413, f"the request body is larger than {limit} bytes", "request_too_large")
        return error_response(too_large)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return error_response(WireError(exc.status, f"{request.method} {request.path}: {exc.reason}", code))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(_internal_error(exc))


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[WORKER]
    state.scheduler.start(asyncio.get_running_loop())

    async def finish_loading() -> None:
        try:
            loaded = await state.scheduler.wait_loaded()
            formatter = await asyncio.get_running_loop().run_in_executor(None, _formatter, state, loaded.tokenizer)
            if state.settings.constrain:
                state.guide = await _build_guide(state, loaded.tokenizer, formatter)
            state.formatter = formatter
        except Exception as exc:
            state.load_error = f"{type(exc).__name__}: {exc}"

    task = asyncio.ensure_future(finish_loading())
    app[LOADING] = task
    yield
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    await state.scheduler.close()


LOADING = web.AppKey("agentgate_worker_loading", asyncio.Task)


def _formatter(state: WorkerState, tokenizer: Any) -> ChatFormatter:
    """The chat formatter (it reads the whole vocabulary: run it off the loop)."""
    with state.scheduler.tokenizer_lock:
        return ChatFormatter(tokenizer, tool_format=state.settings.tool_format, lock=state.scheduler.tokenizer_lock,
                             max_context=state.scheduler.max_context)


async def _build_guide(state: WorkerState, tokenizer: Any, formatter: ChatFormatter) -> Guide | None:
    """The constrained-decoding service; None (logged) when this tokenizer cannot have one."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, Guide.build, hf, state.scheduler.vocab_size, formatter.tool_format,
                                          formatter.think, state.scheduler.tokenizer_lock)
    except BaseException as exc:
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        log.warning("constrained decoding is unavailable for this model: %s", exc)
        return None


async def _stop_engine(app: web.Application) -> None:
    """On shutdown, stop generating first: in-flight requests end at once with an `engine_stopped` error
    instead of holding the shutdown until they finish."""
    await app[WORKER].scheduler.close()


def create_app(settings: WorkerSettings, *, scheduler: Scheduler | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=settings.max_body_bytes)
    sched = scheduler or Scheduler(
        default_loader(settings.model),
        max_batch=settings.max_batch,
        cache_bytes=settings.cache_bytes,
        prefill_step_size=settings.prefill_step_size,
        max_context=settings.max_context,
        cpu_threads=settings.cpu_threads,
        kv_dir=settings.kv_dir,
        kv_disk_bytes=settings.kv_disk_bytes,
    )
    app[WORKER] = WorkerState(settings, sched)
    app.cleanup_ctx.append(_engine_ctx)
    app.on_shutdown.append(_stop_engine)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model_id:.+}", models)  # an id may hold slashes (org/model)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    return app


async def wait_ready(app: web.Application) -> None:
    """Until the model is loaded; raises RuntimeError when loading failed."""
    await asyncio.shield(app[LOADING])
    state = app[WORKER]
    if state.load_error is not None:
        raise RuntimeError(state.load_error)


def _prepare_socket_path(path: Path) -> None:
    """Create the folder and remove a stale socket left by a previous worker: never a regular file, nor the socket
    of a server still accepting on it (an OSError EADDRINUSE, as a taken TCP port is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (path.exists() and stat.S_ISSOCK(path.stat().st_mode)):
        return
    if _accepting(path):
        raise OSError(errno.EADDRINUSE, "address already in use by a running server", str(path))
    path.unlink()


def _accepting(path: Path) -> bool:
    """Whether a server listens on the Unix socket `path` (one that answers slowly counts)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except TimeoutError:  # its queue is full: a server that is busy, not gone
            return True
        except OSError:  # ECONNREFUSED: nothing listens there any more
            return False
    return True


@dataclass
class RunningWorker:
    app: web.Application
    runner: web.AppRunner
    url: str  # base URL ("http://localhost" for a Unix socket)
    unix_socket: str | None = None

    async def close(self) -> None:
        await self.runner.cleanup()
        if self.unix_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_socket)


async def serve(settings: WorkerSettings, *, host: str = "127.0.0.1", port: int = 0, socket_path: str | None = None,
                scheduler: Scheduler | None = None) -> RunningWorker:
    """Start the worker on a Unix socket (mode 0600) or a TCP port (0: any free one); returns once listening."""
    app = create_app(settings, scheduler=scheduler)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        if socket_path:
            path = Path(socket_path)
            _prepare_socket_path(path)
            old = os.umask(0o177)
            try:
                site: web.BaseSite = web.UnixSite(runner, str(path))
                await site.start()
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            return RunningWorker(app, runner, "http://localhost", str(path))
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = next((a[1] for a in runner.addresses if isinstance(a, tuple)), port)
        shown = f"[{host}]" if ":" in host else host
        return RunningWorker(app, runner, f"http://{shown}:{bound}")
    except BaseException:
        await runner.cleanup()
        raise
