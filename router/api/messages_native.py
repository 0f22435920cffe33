"""Messages requests to Anthropic providers, passed through: when every target of the requested model is an
Anthropic provider, the client's Messages body goes upstream as it came (its model name the target's) with its
`anthropic-beta` header, and the answer comes back as Anthropic sent it (its model name the client's, any
provider credential redacted). Through the chat form the translation lost what that form cannot hold: thinking
signatures (so thinking was turned off in tool loops), `cache_control` breakpoints (no prompt caching), cache-write
usage, a tool result's `is_error`, beta features. Routing, retries, fallbacks along the route, breakers, limits,
metrics and logs are the ones every request gets; the tool-call repair is not applied (Anthropic's tool_use blocks
are structured)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .. import jsoncodec, relay
from ..context import RequestContext
from ..dialects.anthropic_in import error_body
from ..dialects.common import sse_event
from ..dispatch import Opened, dispatch
from ..errors import ApiError
from ..exchange import Exchange
from ..redact import WITHHELD, SecretGate
from ..sse import event_data
from ..upstream.anthropic import BETA_HEADER, COUNT_PATH, merged_betas
from ..upstream.base import UpstreamRequest
from .common import JSON_HEADERS
from .translated import route_kinds

PATH = "/chat/completions"  # the path every chat-shaped request names; an Anthropic upstream sends to /messages
_LOOKED_AT = (b"message_start", b"message_delta", b"message_stop", b"error")  # the event types read here


_THINKING_BLOCK = re.compile(rb'"type"\s*:\s*"thinking"')  # a body without it holds no thinking block


def signed_history(raw: bytes, body: dict[str, Any]) -> dict[str, Any]:
    """`body` without the assistant thinking blocks that carry no signature (an empty or missing one): another
    model made them, through the chat form (a translated route's answer; its client keeps them and resends them
    after switching to a Claude model), and Anthropic refuses every one ("Invalid `signature` in `thinking`
    block"). An assistant message left with no block goes too. When that leaves the turn a tool loop continues
    without its leading thinking block, the request goes without `thinking` (see `_thinking_kept`). `body` itself
    when it has none, found by its bytes first; the messages are never changed in place (they may be shared by
    other requests)."""
    if _THINKING_BLOCK.search(raw) is None:
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_with_unsigned(m) for m in messages):
        return body
    kept: list[Any] = []
    for m in messages:
        if not _with_unsigned(m):
            kept.append(m)
        elif blocks := [b for b in m["content"] if not _unsigned(b)]:
            kept.append({**m, "content": blocks})
    out = {**body, "messages": kept}
    if not _thinking_kept(out):
        del out["thinking"]
    return out


def _thinking_kept(body: dict[str, Any]) -> bool:
    """Whether the body may keep its `thinking`. With thinking on, Anthropic wants the assistant turn a tool loop
    continues to start with its thinking block ("When `thinking` is enabled, a final `assistant` message must
    start with a thinking block"); one whose unsigned block was left out no longer does, so the request goes
    without thinking instead of being refused, as a translated route's does."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") == "disabled":
        return True
    messages = body["messages"]
    if len(messages) < 2 or not _holds(messages[-1], "user", ("tool_result",)):
        return True
    turn = messages[-2]
    if not _holds(turn, "assistant", ("tool_use",)):
        return True
    first = turn["content"][0]
    return isinstance(first, dict) and first.get("type") in ("thinking", "redacted_thinking")


def _holds(message: Any, role: str, types: tuple[str, ...]) -> bool:
    """Whether `message` is `role`'s with a block of one of `types` in its content."""
    return isinstance(message, dict) and message.get("role") == role and isinstance(message.get("content"), list) \
        and any(isinstance(b, dict) and b.get("type") in types for b in message["content"])


def _with_unsigned(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "assistant" and \
        isinstance(message.get("content"), list) and any(_unsigned(b) for b in message["content"])


def _unsigned(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "thinking" and block.get("signature") in (None, "")


NATIVE_KINDS = {"anthropic"}  # the upstream kinds of a route that gets the client's body as it came


def native_route(ctx: RequestContext) -> bool:
    """Whether every target the request may reach is an Anthropic provider."""
    return route_kinds(ctx) == NATIVE_KINDS


def _request(ctx: RequestContext, body: dict[str, Any], stream: bool, beta: str | None,
             path: str = PATH) -> UpstreamRequest:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "user_id" in metadata:  # device and session ids: never forwarded
        kept = {k: v for k, v in metadata.items() if k != "user_id"}
        body = {k: v for k, v in body.items() if k != "metadata"} | ({"metadata": kept} if kept else {})
    headers = dict(ctx.upstream_headers)
    if beta:
        headers[BETA_HEADER] = beta
    return UpstreamRequest(path, {"model": body.get("model"), "stream": stream}, None, headers, stream,
                           ctx.limits.max_upstream_event_bytes, native=body)


def _betas(request: web.Request) -> str | None:
    """The client's `anthropic-beta`: every line of it, as one list (several lines of a header are one, their
    values joined by commas)."""
    return merged_betas(*request.headers.getall(BETA_HEADER, ())) or None


async def native_count(request: web.Request, ctx: RequestContext, body: dict[str, Any],
                       headers: dict[str, str]) -> web.Response:
    """Anthropic's own count of the client's body (`count_tokens`), or its verdict on the body."""
    opened = await dispatch(ctx, _request(ctx, body, False, _betas(request), COUNT_PATH))
    try:
        answer = _whole(opened, ctx.exchange, None, {**headers, "x-agentgate-provider": opened.upstream.name})
    finally:
        await opened.close()
    return answer


def _usage(ex: Exchange, usage: object) -> None:
    """Anthropic usage into the record: input counts cache reads and writes too, as the chat form's prompt does."""
    if not isinstance(usage, dict):
        return
    counts = {k: usage.get(k) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                        "cache_creation_input_tokens")}
    n = {k: v if isinstance(v, int) and not isinstance(v, bool) else 0 for k, v in counts.items()}
    if isinstance(counts["input_tokens"], int):
        ex.prompt_tokens = n["input_tokens"] + n["cache_read_input_tokens"] + n["cache_creation_input_tokens"]
        ex.cached_tokens = n["cache_read_input_tokens"] or ex.cached_tokens
    if isinstance(counts["output_tokens"], int):
        ex.completion_tokens = n["output_tokens"]


async def native_message(request: web.Request, ctx: RequestContext, body: dict[str, Any], model: str,
                         stream: bool, headers: dict[str, str]) -> web.StreamResponse:
    """The answer of the route's Anthropic providers to the client's own Messages body."""
    ex = ctx.exchange
    opened = await dispatch(ctx, _request(ctx, body, stream, _betas(request)))
    try:
        headers = {**headers, "x-agentgate-provider": opened.upstream.name}
        if stream and opened.reply.status == 200:
            reader = AnthropicEvents(opened, ex, ctx.metrics, model, ctx.limits.max_upstream_event_bytes)
            return await relay.write_stream(request, ex, reader.events(), NativeEvents(ex.request_id), headers)
        return _whole(opened, ex, model, headers)
    finally:
        await opened.close()


def _whole(opened: Opened, ex: Exchange, model: str | None, headers: dict[str, str]) -> web.Response:
    """A whole answer: a message (`model`: the client's name for it), or a count (`model` None)."""
    status = opened.reply.status
    name = opened.upstream.name
    if status in (401, 403):
        raise ApiError(502, f"Upstream {name!r} refused the configured credentials ({status}).", "upstream_auth")
    try:
        doc = jsoncodec.loads(opened.first)  # (read redacted every secret)
    except (ValueError, RecursionError):
        doc = None
    if status != 200:
        if not 400 <= status < 500:  # (429 never comes here: it is retried, fallen back from)
            raise ApiError(502, f"Upstream {name!r} answered {status}.", "upstream_error")
        # the upstream's verdict on the request (400, 402 billing, 404, 409, 413, ...): the client's, as it is
        if not isinstance(doc, dict) or doc.get("type") != "error" or not isinstance(doc.get("error"), dict):
            err = doc.get("error") if isinstance(doc, dict) else None
            message = err.get("message") if isinstance(err, dict) else None
            raise ApiError(status, str(message) if message else f"Upstream {name!r} answered {status}.",
                           "upstream_error", headers={"x-agentgate-provider": name})
        if not isinstance(doc.get("request_id"), str):  # (an Anthropic-compatible server's): named as ours are
            doc["request_id"] = ex.request_id
        ex.status = status
        return web.Response(status=status, body=jsoncodec.dumps(doc), headers={**JSON_HEADERS, **headers})
    if doc is None:
        raise ApiError(502, f"Upstream {name!r} returned a body that is not JSON.", "upstream_invalid_response")
    if not isinstance(doc, dict):
        raise ApiError(502, f"Upstream {name!r} returned a body that is not a message.", "upstream_invalid_response")
    if model is None:
        count = doc.get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ApiError(502, f"Upstream {name!r} returned no token count.", "upstream_invalid_response")
        doc = {"input_tokens": count}
    elif doc.get("type") != "message":
        raise ApiError(502, f"Upstream {name!r} returned a body that is not a message.", "upstream_invalid_response")
    else:
        doc["model"] = model
        _usage(ex, doc.get("usage"))
    ex.status = 200
    return web.Response(body=jsoncodec.dumps(doc), headers={**JSON_HEADERS, **headers})


class AnthropicEvents(relay.UpstreamReader):
    """An Anthropic provider's events as the client gets them: `message_start` naming the client's model, every
    event that may hold a credential rebuilt from its redacted payload, usage noted, and the end checked (an
    `error` event or `message_stop`; a stream that stops before either ends with an error event)."""

    def __init__(self, opened: Opened, ex: Exchange, metrics: Any, model: str, max_event_bytes: int) -> None:
        super().__init__(opened, ex, metrics, max_event_bytes)
        self.model = model
        # a secret split over several deltas (no one event holds it) is looked for in the blocks' text
        self.gate = SecretGate(self.redactor.secrets) if self.redactor.secrets else None
        self.errored = False  # the stream ended with the upstream's error event

    def _ended(self) -> None:
        """(The stream's end is judged in `events`: `message_stop`.)"""

    async def events(self) -> AsyncIterator[list[bytes]]:
        self.done = True  # (what ends the stream is checked here: `_reads` does not look for OpenAI's [DONE])
        ended = False
        try:
            async for events in self._reads():
                out = []
                for event in events:
                    if ended:
                        continue
                    event, ended = self._event(event)
                    if event:
                        if ended:  # the stream's end or its error: what blocks held goes out before it
                            event = self._held() + event
                        out.append(event)
                if out:
                    yield out
        except ApiError:
            if held := self._held():  # what blocks held goes out before the stream's error event
                yield [held]
            raise
        if not ended:
            self._fail("truncated")  # (counted)
            raise ApiError(502, f"Upstream {self.opened.upstream.name!r} ended the stream before message_stop.",
                           "upstream_truncated_mid_stream")
        if not self.errored:
            super()._ended()

    def _event(self, event: bytes) -> tuple[bytes, bool]:
        """The event as it goes out, and whether it ends the stream."""
        data = event_data(event)
        redactor = self.redactor
        if data is None:
            return (b"" if redactor.suspicious(event) else event), False
        if self.gate is not None:
            gated = self._gated(data)
            if gated is not None:
                return gated, False
        return self._checked(event, data)

    def _gated(self, data: bytes) -> bytes | None:
        """A block's delta through the gate (what its text may begin of a secret waits for its next delta), or the
        block's stop after what its text held; None for any other event (or one that is not JSON)."""
        gate = self.gate
        assert gate is not None
        delta_event = b'"content_block_delta"' in data
        if not delta_event and not (gate.held and b'"content_block_stop"' in data):
            return None
        try:
            doc = jsoncodec.loads(redact_data(data, self.redactor, self.opened.upstream.name))
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict) or doc.get("type") not in ("content_block_delta", "content_block_stop"):
            return None
        index = doc.get("index")
        index = index if type(index) is int else 0
        if doc["type"] == "content_block_stop":
            return self._held(index) + sse_event("content_block_stop", doc)
        delta = doc.get("delta")
        key = _DELTA_TEXT.get(str(delta.get("type"))) if isinstance(delta, dict) else None
        if key is None or not isinstance(delta, dict) or not isinstance(delta.get(key), str):
            held = self._held(index)  # (a thinking block's signature comes after all of its text)
            return held + sse_event("content_block_delta", doc) if held else None
        delta[key] = gate.text((index, key), delta[key])
        return sse_event("content_block_delta", doc) if delta[key] else b""

    def _held(self, index: int | None = None) -> bytes:
        """What the block `index` (None: every block) held, as its deltas (see `SecretGate.release`)."""
        gate = self.gate
        if gate is None or not gate.held:
            return b""
        channels = [c for c in gate.held if index is None or c[0] == index]
        return b"".join(_delta_event(c[0], c[1], text) for c in channels if (text := gate.release(c)))

    def _checked(self, event: bytes, data: bytes) -> tuple[bytes, bool]:
        redactor = self.redactor
        suspicious = redactor.suspicious(event)
        if suspicious:
            data = redact_data(data, redactor, self.opened.upstream.name)
        kind = b""
        if any(b'"' + name + b'"' in data for name in _LOOKED_AT):  # may be one (or text that names one)
            try:
                doc = jsoncodec.loads(data)
            except (ValueError, RecursionError):
                doc = None
            if isinstance(doc, dict):
                kind = str(doc.get("type", "")).encode()
                if kind == b"message_start" and isinstance(doc.get("message"), dict):
                    message = doc["message"]
                    message["model"] = self.model
                    _usage(self.ex, message.get("usage"))
                    return sse_event("message_start", doc), False
                if kind == b"message_delta":
                    _usage(self.ex, doc.get("usage"))
                if kind == b"error":
                    self.errored = True
                    self.ex.error, self.ex.ended_with = "upstream_error_event", 502
                    self._fail("error_event")
                    if not isinstance(doc.get("request_id"), str):  # named as the translated route's are
                        doc["request_id"] = self.ex.request_id
                    return sse_event("error", doc), True
        if suspicious:  # rebuilt: its name (when that is clean) and its redacted payload, nothing else
            first = event.split(b"\n", 1)[0].rstrip(b"\r")
            name = first[6:].lstrip(b" ") if first.startswith(b"event:") else b""
            event = (b"event: " + name + b"\n" if name and not redactor.suspicious(name) else b"") + \
                b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"
        return event, kind == b"message_stop"


_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}
_DELTA_TYPE = {v: k for k, v in _DELTA_TEXT.items()}


def _delta_event(index: Any, key: str, text: str) -> bytes:
    return sse_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                             "delta": {"type": _DELTA_TYPE[key], key: text}})


def redact_data(data: bytes, redactor: relay.Redactor, name: str) -> bytes:
    """A payload with the provider's secrets redacted (or the whole withheld: an ApiError)."""
    if not redactor.suspicious(data):
        return data
    data = redactor.data(data)
    if data == WITHHELD:  # a credential the redaction could not take out of it
        raise ApiError(502, f"Upstream {name!r} sent an event holding a configured credential; it was withheld.",
                       "upstream_credential_withheld")
    return data


class NativeEvents:
    """The events as they are; a failure after the stream began is Anthropic's error event, naming the request
    (`request_id`)."""

    keepalive = relay.MESSAGES_PING

    def __init__(self, request_id: str = "") -> None:
        self.request_id = request_id

    def feed(self, item: bytes) -> list[bytes]:
        return [item]

    def feed_all(self, items: list[bytes]) -> bytes:
        return b"".join(items)

    def finish(self) -> list[bytes]:
        return []

    def error(self, err: ApiError) -> list[bytes]:
        return [sse_event("error", error_body(err, self.request_id))]
