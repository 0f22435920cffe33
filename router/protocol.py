"""aiohttp's own error answers given in the router's shape: a request its HTTP parser refuses, a failure a handler
let escape, and an HTTP error aiohttp raised before any route ran; and a request's body its parser refuses once the
route reads it, refused to the route.

aiohttp answers a request it cannot parse (a bad request line, a header with a control character, a line past its
size limit) before any route, hook or middleware sees it, with a text page that quotes the offending bytes
(`RequestHandler.handle_error`): a header line carrying a client's key came back in the answer, escaped. The
router's connections are `Protocol`s, whose `handle_error` answers in the routes' JSON error shape instead, naming
the kind of fault only: OpenAI's, or Anthropic's on the Messages paths when the request was read (a refused
request's path is not known: aiohttp's parser keeps it to itself). The rest is aiohttp's: the status it chose (400
for every parser error), its log record (which the app's filter strips of the bytes), its refusal once an answer
began, the connection closed after the answer. A connection whose first bytes begin a TLS record is told that it
looks like TLS sent to the plain-HTTP port (`TLSOnPlainHTTP`; aiohttp's parsers call it a malformed method or a bad
line ending).

A request whose target is not a path (`CONNECT host:443`, `OPTIONS *`) matches no route, not even the router's
catch-all (aiohttp's router only looks for paths), and aiohttp answers it with its text 404 (or its own Expect
handler's 417, which echoes the header): `Protocol.finish_response` gives those in the routes' shape (`routing_answer`).
No hook of aiohttp's reaches them otherwise but a middleware, which would cost every request two coroutine layers.

A body aiohttp's parser refuses after its request went to the route (a chunked body whose first chunks were good,
then a chunk size line that is not one) is refused to the route too (`Protocol.data_received`): aiohttp queues the
parser's error as the connection's next request and leaves the body open, its route waiting for the rest until its
idle timeout. The route's read then fails as for a body aiohttp could not decode (`RequestPayloadError`, which the
routes answer with a 400 in their shape), and the connection is closed after the answer.

A request aiohttp can parse costs next to nothing more: the server builds each connection's protocol from this
class instead of aiohttp's (`Runner`), whose every read from the socket counts the queue of requests twice (about
0.1 µs) and whose every answer is checked for being one of aiohttp's own errors (about 0.2 µs).
"""

from __future__ import annotations

import secrets
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any

from aiohttp import http_exceptions, web, web_protocol
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from .errors import ApiError

# aiohttp's own names that `Protocol.data_received` reads (3.9 to 3.14): where an aiohttp release has not all of
# them, its connections read requests as aiohttp does (a body refused mid-read waits for its idle timeout, TLS is
# called a malformed method) rather than fail on each read
_ErrInfo: Any = getattr(web_protocol, "_ErrInfo", None)
_READS_QUEUE = _ErrInfo is not None and all(hasattr(RequestHandler, name) for name in (
    "_messages", "_request_count", "_current_request", "data_received"))


class TLSOnPlainHTTP(http_exceptions.BadHttpMessage):
    """A connection's first bytes that the parser refused began a TLS record: a client given an https:// URL for
    the router's plain-HTTP port (aiohttp's parsers call it a malformed method, or a bad line ending)."""


TLS_RECORD = b"\x16\x03"  # a TLS handshake record's first bytes (content type 22, protocol version 3.x)

# what each parser error says of the request (its message quotes the bytes; this names the fault only)
_FAULTS: tuple[tuple[type[Exception], str], ...] = (
    (TLSOnPlainHTTP, "it looks like TLS (https://) sent to the router's plain-HTTP port (use http://)"),
    (http_exceptions.LineTooLong, "its request line or a header is longer than the router reads"),
    (http_exceptions.BadHttpMethod, "its method is malformed"),
    (http_exceptions.BadStatusLine, "its request line is malformed"),
    (http_exceptions.InvalidURLError, "its URL is malformed"),
    (http_exceptions.InvalidHeader, "a header is malformed"),
    (http_exceptions.TransferEncodingError, "its chunked body is malformed"),
    (http_exceptions.ContentLengthError, "its Content-Length is malformed"),
)


def _fault(exc: BaseException | None) -> str:
    for kind, says in _FAULTS:
        if isinstance(exc, kind):
            return says
    return "a header or the message's framing is malformed"  # (a control character in a header, among others)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "The request failed"


def error_answer(request: BaseRequest, status: int, exc: BaseException | None) -> web.Response:
    """What the router answers where aiohttp would have answered `status` itself (see the module's text): JSON in
    the path's shape, quoting nothing of the request, the connection closed after it."""
    if isinstance(exc, http_exceptions.HttpProcessingError):
        err = ApiError(status, f"The request is not valid HTTP/1.1: {_fault(exc)}.", "malformed_http_request")
    elif status == HTTPStatus.INTERNAL_SERVER_ERROR:
        err = ApiError(status, "Internal error; the router's log has the details.", "internal_error")
    else:  # (aiohttp's 504 for a handler's timeout)
        err = ApiError(status, f"{_phrase(status)}.", "http_error")
    resp = _shaped(request, err, request.path.startswith("/v1/messages"))
    resp.force_close()
    return resp


def expectation_failed() -> ApiError:
    """The 417 for an `Expect` header other than 100-continue (its value unquoted)."""
    return ApiError(417, "The request's Expect header asks for an expectation the router does not meet: only "
                         "100-continue is supported.", "expectation_failed")


def routing_answer(request: BaseRequest, exc: web.HTTPException) -> web.Response:
    """What the router answers for an HTTP error aiohttp raised itself before any route ran, where it would have
    answered with its text page: no route matched (the router's catch-all route takes every path, so a target
    that is not one: `CONNECT host:443`, `OPTIONS *`), or its own `Expect` handler refused (there). JSON in the
    shape the routes give such errors (Anthropic's on the Messages paths or for a client that sends
    `anthropic-version`), quoting nothing of the request; the connection kept as aiohttp would have kept it."""
    status = exc.status
    if status == HTTPStatus.NOT_FOUND:
        err = ApiError(status, "No route matches the request: the router's routes are paths, which begin with /.",
                       "not_found")
    elif status == HTTPStatus.METHOD_NOT_ALLOWED:
        err = ApiError(status, "The request's method is not allowed for its target.", "method_not_allowed",
                       headers={"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)
    elif status == HTTPStatus.EXPECTATION_FAILED:
        err = expectation_failed()
    else:
        err = ApiError(status, f"{_phrase(status)}.", "http_error")
    return _shaped(request, err, request.path.startswith("/v1/messages") or "anthropic-version" in request.headers)


def _shaped(request: BaseRequest, err: ApiError, anthropic: bool) -> web.Response:
    if anthropic:  # Anthropic's shape names the request, as the routes' errors do
        rid = secrets.token_hex(12)
        resp = err.response("anthropic", rid)
        resp.headers["x-request-id"] = rid
        return resp
    return err.response("openai")


class Protocol(RequestHandler):
    """aiohttp's HTTP/1.1 connection, its own error answers in the router's shape (`error_answer`,
    `routing_answer`), a body its parser refuses mid-read refused to its route."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        if not _READS_QUEUE:  # (see `_READS_QUEUE`)
            super().data_received(data)
            return
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            last = self._messages[-1][0]
            if not isinstance(last, _ErrInfo):
                return
            if self._request_count == 1 and data.startswith(TLS_RECORD):  # the connection's first bytes refused
                self._messages[-1] = (_ErrInfo(status=last.status, exc=TLSOnPlainHTTP("a TLS handshake"),
                                               message=""), self._messages[-1][1])
            else:  # a parser error, queued as a request
                self._refuse_open_body(last.exc)

    def _refuse_open_body(self, exc: BaseException) -> None:
        """The parser refused what followed a request whose body is still open: that body's (a request's body
        ends before the next is parsed), refused to its reader, which would wait for the rest otherwise. The
        request is the newest one queued, else the one being handled."""
        body: StreamReader | None = None
        for message, payload in reversed(self._messages):
            if not isinstance(message, _ErrInfo):
                body = payload
                break
        else:
            if self._current_request is not None:
                body = self._current_request.content
        if body is not None and not body.is_eof() and body.exception() is None:
            body.set_exception(RequestPayloadError("the request's body is malformed"), exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, "")  # its log record; ConnectionError once an answer began
        return error_answer(request, status, exc)

    def finish_response(self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
                        ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        if isinstance(resp, web.HTTPException) and resp.status >= 400 and not resp.prepared:
            resp = routing_answer(request, resp)  # (no route ran: a route answers such errors itself)
        return super().finish_response(request, resp, start_time)  # (no coroutine of its own on every answer)


class Server(web.Server):
    """aiohttp's server, its connections `Protocol`s."""

    def __call__(self) -> RequestHandler:
        return Protocol(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """`web.AppRunner` serving with `Server`: the app's server as aiohttp makes it (its handler, request factory
    and settings), its connections `Protocol`s."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return Server(made.request_handler, request_factory=made.request_factory,
                      handler_cancellation=made.handler_cancellation, **made._kwargs)
