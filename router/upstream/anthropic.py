"""Anthropic's Messages API as an upstream: OpenAI chat requests translated on the way out, Messages responses and
events translated back into chat completion JSON and SSE, so dispatch, retries and repair work unchanged."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Mapping

import aiohttp

from .. import jsoncodec
from ..config.model import ProviderConfig
from ..custom_tools import custom_names
from ..dialects import anthropic_out as wire
from ..redact import safe_headers, scrub_body, scrub_literal
from ..sse import DEFAULT_MAX_EVENT_BYTES, EventSplitter, UpstreamTooLarge, event_data
from .base import (
    AiohttpReply,
    IdleWatch,
    Reply,
    UpstreamRequest,
    UpstreamUnavailable,
    read_limited,
    with_timeout,
)
from .openai import HttpUpstream

API_VERSION = "2023-06-01"
CHAT_PATH = "/chat/completions"
COUNT_PATH = "/messages/count_tokens"  # (native requests only: a Messages client's own body)
BETA_HEADER = "anthropic-beta"  # a comma-separated list of betas


DEPTH_NOTE = "the router translates"


def merged_betas(*values: str) -> str:
    """`anthropic-beta` values as one: each beta once, in the order first named."""
    betas = (b.strip() for value in values for b in value.split(","))
    return ",".join(dict.fromkeys(b for b in betas if b))


class AnthropicReply:
    """A `Reply` whose body is translated: `read()` gives chat completion JSON (or an OpenAI-shaped error),
    `chunks()` gives chat completion SSE. Successive `chunks()` iterators continue one another."""

    def __init__(self, resp: aiohttp.ClientResponse, model: str | None, stream: bool, include_usage: bool,
                 secret: str | tuple[str, ...] | None, idle: float | None = None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, customs: frozenset[str] = frozenset()) -> None:
        self._resp = resp
        self._watch = IdleWatch(resp, idle)  # the gaps in the body (see openai.client_timeout)
        self.status = resp.status
        given = safe_headers(resp.headers, secret)
        headers = {"Content-Type": "application/json"}
        if stream and resp.status == 200:  # what the stream is translated into; anything but an event stream stays
            ctype = given.get("Content-Type", "")  # as it came, and `judge` refuses it as it would an OpenAI one's
            headers["Content-Type"] = "text/event-stream" if ctype.lower().startswith("text/event-stream") else ctype
        retry_after = given.get("Retry-After")
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        self.headers: Mapping[str, str] = headers
        self._read: bytes | None = None
        self._model = model
        self._secret = secret
        self._customs = customs  # the request's custom tools (their calls go back as custom calls)
        self._translator = wire.MessagesToChunks(model, include_usage, customs)
        self._splitter = EventSplitter(max_event_bytes)
        self._pending: deque[bytes] = deque()
        self._eof = False

    async def read(self, limit: int | None = None) -> bytes:
        """The body translated: a 200 that is an Anthropic error object becomes an OpenAI one, which dispatch
        takes for a failure (`base.error_answer`)."""
        return self._translated(scrub_body(await read_limited(self._resp, limit, self._watch), self._secret))

    def _translated(self, body: bytes) -> bytes:
        if self.status != 200:
            return wire.error_body(self.status, body)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return body  # passed on as is: the pipeline reports a body that is not JSON
        if not isinstance(doc, dict):
            return body
        if doc.get("type") == "error":  # a 200 carrying an error (some gateways): not an answer
            return wire.error_body(502, body)
        try:  # (an answer nested too deep is the upstream's fault, not the client's: one the router cannot translate)
            return jsoncodec.dumps(wire.completion(doc, self._model, self._customs))
        except (RecursionError, jsoncodec.TooDeep):
            return wire.error_body(502, json.dumps({"error": {"message": f"an answer nested deeper than "
                                                                       f"{DEPTH_NOTE}"}}).encode())

    async def _next(self) -> bytes | None:
        while not self._pending:
            if self._eof:
                return None
            raw = await self._watch.readany()
            if not raw:
                self._eof = True
                events = self._splitter.end()
                rest = self._splitter.rest()
                events += [rest + b"\n\n"] if rest.strip() else []
            else:
                events = self._splitter.feed(raw)  # UpstreamTooLarge past the bound: `classify` and the reader
                # both know it
            for event in events:
                data = event_data(event)
                if data is None:
                    continue
                try:
                    doc = json.loads(data)
                    out = self._translator.event(doc) if isinstance(doc, dict) else b""
                except ValueError:
                    continue
                except RecursionError:  # the upstream's fault, not the client's: the stream's terminal error
                    raise UpstreamTooLarge(f"an event nested deeper than {DEPTH_NOTE}") from None
                if out:
                    self._pending.append(scrub_literal(out, self._secret))
            if self._eof and not self._translator.done:
                self._translator.done = True
                self._pending.append(b'data: {"error": {"message": "The Anthropic stream ended before '
                                     b'message_stop.", "type": "api_error", "code": "upstream_truncated"}}\n\n')
        out = b"".join(self._pending)
        self._pending.clear()
        return out

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._next()
            if chunk is None:
                return
            yield chunk

    def chunks(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def close(self) -> None:
        self._watch.stop()
        self._resp.close()


class AnthropicUpstream(HttpUpstream):
    kind = "anthropic"

    def __init__(self, config: ProviderConfig, connector: aiohttp.BaseConnector | None = None) -> None:
        super().__init__(config, connector, {"Content-Type": "application/json", "User-Agent": "agentgate",
                                             "anthropic-version": API_VERSION},
                         {"x-api-key": config.api_key} if config.api_key else {})

    def _with_betas(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """`headers` with their `anthropic-beta` joined to the provider's configured one: a request's header
        replaces the session's of the same name instead of adding to it."""
        given = headers.get(BETA_HEADER)
        configured = [v for k, v in self.config.headers if k.lower() == BETA_HEADER]
        if not given or not configured:
            return headers
        return {**headers, BETA_HEADER: merged_betas(*configured, given)}

    async def send(self, request: UpstreamRequest) -> Reply:
        if request.native is not None and request.path == COUNT_PATH:  # a Messages client's count_tokens
            data = jsoncodec.dumps({**request.native, "model": request.body.get("model")})
            timeouts = self.config.policy.timeouts
            resp = await with_timeout(self.session.post(self._base + "/messages/count_tokens", data=data,
                                                        headers=self._with_betas(request.headers),
                                                        allow_redirects=False),
                                      timeouts.first_byte)
            return AiohttpReply(resp, secret=self.secrets, idle=timeouts.idle)
        if request.path != CHAT_PATH:
            raise UpstreamUnavailable(f"Provider {self.name!r} (Anthropic) serves chat completions only, not "
                                      f"{request.path.lstrip('/')}.", status=400, code="unsupported_endpoint")
        body = request.body  # (`raw` is this body's bytes: nothing to parse again)
        stream = request.stream
        timeouts = self.config.policy.timeouts
        if request.native is not None:  # a Messages client's own body, answered as Anthropic answers it
            data = jsoncodec.dumps({**request.native, "model": body.get("model")})
            resp = await with_timeout(self.session.post(self._base + "/messages", data=data,
                                                        headers=self._with_betas(request.headers),
                                                        allow_redirects=False), timeouts.first_byte)
            return AiohttpReply(resp, secret=self.secrets, idle=timeouts.idle)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        data = jsoncodec.dumps(wire.messages_request({**body, "stream": stream}, request.max_output))
        resp = await with_timeout(self.session.post(self._base + "/messages", data=data, headers=request.headers,
                                                    allow_redirects=False),
                                  self.config.policy.timeouts.first_byte)
        return AnthropicReply(resp, body.get("model"), stream, include_usage, self.secrets,
                              self.config.policy.timeouts.idle, request.max_event_bytes,
                              custom_names(body.get("tools")))

