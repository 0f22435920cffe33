"""aiohttp's own error answers given in the router's shape: a request its HTTP parser refuses, and a failure a handler
let escape; and a request's body its parser refuses once the route reads it, refused to the route.

aiohttp answers a request it cannot parse (a bad request line, a header with a control character, a line past its
size limit) before any route, hook or middleware sees it, with a text page that quotes the offending bytes
(`RequestHandler.handle_error`): a header line carrying a client's key came back in the answer, escaped. The
router's connections are `Protocol`s, whose `handle_error` answers in the routes' JSON error shape instead, naming
the kind of fault only: OpenAI's, or Anthropic's on the Messages paths when the request was read (a refused
request's path is not known: aiohttp's parser keeps it to itself). The rest is aiohttp's: the status it chose (400
for every parser error), its log record (which the app's filter strips of the bytes), its refusal once an answer
began, the connection closed after the answer. A request aiohttp can parse costs next to nothing more: the server
only builds each connection's protocol from this class instead of aiohttp's (`Runner`), whose reads from the socket
each count the connection's queue of requests twice.

A body aiohttp's parser refuses after its request went to the route (a chunked body whose first chunks were good,
then a chunk size line that is not one) is refused to the route too (`Protocol.data_received`): aiohttp queues the
parser's error as the connection's next request and leaves the body open, its route waiting for the rest until its
idle timeout. The route's read then fails as for a body aiohttp could not decode (`RequestPayloadError`, which the
routes answer with a 400 in their shape), and the connection is closed after the answer.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus

from aiohttp import http_exceptions, web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_request import BaseRequest

from .errors import ApiError

# what each parser error says of the request (its message quotes the bytes; this names the fault only)
_FAULTS: tuple[tuple[type[Exception], str], ...] = (
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
    if request.path.startswith("/v1/messages"):  # Anthropic's shape names the request, as the routes' errors do
        rid = secrets.token_hex(12)
        resp = err.response("anthropic", rid)
        resp.headers["x-request-id"] = rid
    else:
        resp = err.response("openai")
    resp.force_close()
    return resp


class Protocol(RequestHandler):
    """aiohttp's HTTP/1.1 connection, its own error answers in the router's shape (`error_answer`)."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            last = self._messages[-1][0]
            if isinstance(last, _ErrInfo):  # a parser error, queued as a request
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
