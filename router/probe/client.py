"""A minimal OpenAI chat-completions client on aiohttp (a core dependency): one call, timed.

Non-stream calls measure latency only; stream calls also measure the time to the first token (the first delta
that carries content, reasoning or a tool call) and assemble the message from the deltas.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from ..chat_types import ChunkPart, parse_chunk
from ..config.model import shown_url
from ..redact import scrub_body, scrub_text, scrub_value
from ..relay import FAILED_FINISHES, carries_error, error_value, failed_finish, finished_with
from ..sse import EventSplitter, error_field, event_data


class Unreachable(Exception):
    """The base URL cannot be reached at all (connection refused, unknown host, an address aiohttp refuses)."""


@dataclass
class Reply:
    status: int  # HTTP status; 0 when the exchange failed before one arrived
    message: dict[str, Any] | None = None  # the assistant message
    headers: dict[str, str] = field(default_factory=dict)  # the x-agentgate-* response headers, lower-cased
    latency_s: float = 0.0
    ttft_s: float | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: str | None = None  # what went wrong, for non-200 answers and failed exchanges
    error_code: str | None = None


class ChatClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, api_key: str | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 600.0) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.shown_url = shown_url(self.url)  # (never a password the URL holds)
        self.secrets = credentials(base_url, api_key)  # kept out of every error a backend's answer quotes
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def complete(self, body: dict[str, Any]) -> Reply:
        stream = body.get("stream") is True
        started = time.perf_counter()
        try:
            async with self.session.post(self.url, data=json.dumps(body).encode(), headers=self.headers,
                                         timeout=self.timeout) as resp:
                ours = {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("x-agentgate-")}
                if resp.status != 200:
                    reply = Reply(resp.status, headers=ours)
                    _error_from(reply, scrub_body(await resp.read(), self.secrets))
                elif stream:
                    reply = await _read_stream(resp, started, self.secrets)
                    reply.headers = ours
                else:
                    reply = _read_whole(await resp.read())
                    reply.headers = ours
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(f"cannot reach {self.shown_url}: {exc.os_error or exc}") from None
        except aiohttp.InvalidURL as exc:  # `http://256.1.1.1/v1`: refused on every request, never sent
            why = exc.description or "an invalid URL"  # (not its `url`, which may hold a password)
            raise Unreachable(f"cannot reach {self.shown_url}: aiohttp refuses the URL ({why})") from None
        except asyncio.TimeoutError:
            reply = Reply(0, error=f"no complete answer within {self.timeout.total:.0f} s",
                          error_code="timeout")
        except aiohttp.ClientError as exc:
            reply = Reply(0, error=scrub_text(f"{type(exc).__name__}: {exc}", self.secrets), error_code="transport")
        reply.latency_s = time.perf_counter() - started
        return reply


def credentials(base_url: str, api_key: str | None) -> tuple[str, ...]:
    """What the probe sends that must never be shown: the key, and the password of a `user:password@` URL."""
    try:
        password = urlsplit(base_url).password
    except ValueError:
        password = None
    found = (api_key, password, unquote(password) if password else None)
    return tuple(s for s in dict.fromkeys(found) if s)


def _error_from(reply: Reply, raw: bytes) -> None:
    reply.error, reply.error_code = raw.decode("utf-8", "replace")[:300] or f"HTTP {reply.status}", None
    try:
        err = json.loads(raw).get("error")
    except (ValueError, AttributeError, RecursionError):
        return
    _describe(reply, err)


def _describe(reply: Reply, err: Any) -> None:
    """The message and the kind (a code or type that is text, such as the router's) of an `error` member."""
    if isinstance(err, dict):
        reply.error = str(err.get("message") or reply.error)
        reply.error_code = next((c for c in (err.get("code"), err.get("type")) if isinstance(c, str) and c), None)
    elif isinstance(err, str) and err:
        reply.error = err


def _read_whole(raw: bytes) -> Reply:
    try:
        doc = json.loads(raw)
        choice = doc["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):  # (nested past the bound: not an answer)
        return Reply(200, error="the answer is not a chat completion", error_code="invalid_response")
    if not isinstance(message, dict):
        return Reply(200, error="the answer's message is not an object", error_code="invalid_response")
    if (reason := failed_finish(doc["choices"])) is not None:  # the backend failed it, as the router reads it
        return Reply(200, error=f"the answer finished with finish_reason {reason!r}", error_code="upstream_error")
    usage = doc.get("usage")
    usage = usage if isinstance(usage, dict) else None
    return Reply(200, message=message, usage=usage, finish_reason=choice.get("finish_reason"))


async def _read_stream(resp: aiohttp.ClientResponse, started: float, secrets: tuple[str, ...] = ()) -> Reply:
    stream = _Stream(started, secrets)
    splitter = EventSplitter()
    async for raw in resp.content.iter_any():
        for event in splitter.feed(raw):
            if stream.take(event):
                return stream.reply
    for event in splitter.end():
        if stream.take(event):
            return stream.reply
    return stream.end()


class _Stream:
    """A streamed answer assembled event by event; an upstream error, recognised as the router's relay does
    (`sse.error_field`, `relay.carries_error`), or a stream that ends without saying it finished, is the backend's
    failure (an error turn), never the model's."""

    def __init__(self, started: float, secrets: tuple[str, ...] = ()) -> None:
        self.started = started
        self.secrets = secrets
        self.reply = Reply(200)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.done = False  # `data: [DONE]` came

    def take(self, event: bytes) -> bool:
        """Takes one event; whether it was an upstream error, which ends the answer."""
        if (err := error_field(event)) is not None:  # `error: {...}` (llama-server), `event: error`
            return self._fail(error_value(err))
        data = event_data(event)
        if data is None:
            return False
        if data.strip() == b"[DONE]":
            self.done = True
            return False
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return False
        if not isinstance(doc, dict):
            return False
        if carries_error(doc):
            return self._fail(doc["error"])
        self._chunk(doc)
        return False

    def _fail(self, err: Any, code: str = "upstream_error_mid_stream") -> bool:
        err = scrub_value(err, self.secrets)
        self.reply.error = (err if isinstance(err, str) and err else json.dumps(err))[:300] or "an error event"
        _describe(self.reply, err)
        self.reply.error_code = self.reply.error_code or code
        return True

    def _chunk(self, doc: dict[str, Any]) -> None:
        chunk = parse_chunk(doc)
        if chunk.usage is not None:
            self.reply.usage = chunk.usage
        for part in chunk.parts:
            if part.finish_reason:
                self.reply.finish_reason = part.finish_reason
            if _absorb(part, self.content, self.reasoning, self.calls) and self.reply.ttft_s is None:
                self.reply.ttft_s = time.perf_counter() - self.started

    def end(self) -> Reply:
        reply = self.reply
        if reply.finish_reason in FAILED_FINISHES:  # OpenRouter's "error", vLLM's and SGLang's "abort"
            self._fail(finished_with(reply.finish_reason))
        elif not (self.done or reply.finish_reason):
            self._fail("the stream ended early (no finish_reason and no [DONE])", "upstream_truncated_mid_stream")
        if reply.error is not None:
            return reply
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        reply.message = message
        return reply


def _absorb(part: ChunkPart, content: list[str], reasoning: list[str], calls: dict[int, dict[str, Any]]) -> bool:
    """Adds one delta to the message being assembled; whether it carried anything (a token)."""
    token = False
    if part.content:
        content.append(part.content)
        token = True
    if part.reasoning:
        reasoning.append(part.reasoning)
        token = True
    for piece in part.tool_deltas:
        _absorb_call(piece, calls)
        token = True
    return token


def _absorb_call(piece: dict[str, Any], calls: dict[int, dict[str, Any]]) -> None:
    """Adds one tool-call delta to its call, keeping what is malformed as sent so that `check_call` judges it as it
    would in a whole answer: a delta without an integer `index` (none, null) begins a call; a `function` that is not
    an object, or a name or arguments that are not text, stay as they came."""
    index = piece.get("index")
    call = calls.setdefault(index if type(index) is int else len(calls),
                            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if piece.get("id"):
        call["id"] = piece["id"]
    fn, so_far = piece.get("function"), call["function"]
    if fn is None or not isinstance(so_far, dict):
        return
    if not isinstance(fn, dict):
        call["function"] = fn
        return
    so_far["name"] = _joined(so_far["name"], fn.get("name"))
    so_far["arguments"] = _joined(so_far["arguments"], fn.get("arguments"))


def _joined(so_far: Any, piece: Any) -> Any:
    """A call's name or arguments with one more streamed piece: text is appended; a piece that is not text (an
    object as arguments, a number as a name) is kept as it came, and then what follows is not added."""
    if piece is None or not isinstance(so_far, str):
        return so_far
    return so_far + piece if isinstance(piece, str) else piece
