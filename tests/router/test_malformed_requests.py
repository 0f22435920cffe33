"""A request aiohttp's HTTP parser refuses (a bad request line, a header with a control character, a line past its
size limit) is answered by the router, not by aiohttp's text page, which quoted the offending bytes back (a header
line carrying a key, escaped or not): a 400 in OpenAI's JSON error shape that names the kind of fault only, the
connection then closed cleanly, and nothing of the bytes in the answer or the log."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest

from router.app import create_app, start
from router.config import parse_config
from tests.fakes.openai_upstream import FakeUpstream

SECRET = "sk-secret-malformed-7c2e91"
KEY = "sk-client-malformed-3b8d40"

CONFIG = """
server: {{api_keys: [{key}]}}
providers:
  up: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: up}}
"""

HEAD = b"Host: 127.0.0.1\r\n"
BAD = [  # (what the request carries, its bytes)
    ("a control character in the key's header", b"GET /v1/models HTTP/1.1\r\n" + HEAD
     + b"Authorization: Bearer " + SECRET.encode() + b"\x01abc\r\n\r\n"),
    ("a NUL in a header", b"POST /v1/messages HTTP/1.1\r\n" + HEAD + b"x-api-key: " + SECRET.encode()
     + b"\x00abc\r\nContent-Length: 2\r\n\r\n{}"),
    ("a carriage return in a header", b"GET /v1/models HTTP/1.1\r\n" + HEAD + b"Authorization: Bearer "
     + SECRET.encode() + b"\rX: y\r\n\r\n"),
    ("a header line with no colon", b"GET /v1/models HTTP/1.1\r\n" + HEAD + b"Bearer " + SECRET.encode()
     + b"\r\n\r\n"),
    ("a bad method", b"G\x01T /v1/models?key=" + SECRET.encode() + b" HTTP/1.1\r\n" + HEAD + b"\r\n"),
    ("a bad request line", b"GET /v1/models?key=" + SECRET.encode() + b" HTTP/1.1 extra\r\n" + HEAD + b"\r\n"),
    ("a bad HTTP version", b"GET /v1/models?key=" + SECRET.encode() + b" HTTP/9.x\r\n" + HEAD + b"\r\n"),
    ("a header past its size limit", b"GET /v1/models HTTP/1.1\r\n" + HEAD + b"Authorization: Bearer "
     + SECRET.encode() + b"a" * 20000 + b"\r\n\r\n"),
    ("a request line past its size limit", b"GET /v1/models?key=" + SECRET.encode() + b"a" * 20000
     + b" HTTP/1.1\r\n" + HEAD + b"\r\n"),
    ("a second request, malformed, on a kept-alive connection", b"GET /v1/models HTTP/1.1\r\n" + HEAD
     + b"Authorization: Bearer " + SECRET.encode() + b"\x7fabc\r\n\r\n"),
]
FIRST = b"GET /health HTTP/1.1\r\n" + HEAD + b"\r\n"  # (the kept-alive connection's first request)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every line the router's and aiohttp's loggers write, tracebacks included, at every level."""
    handler = _Lines()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    names = ("agentgate", "agentgate.access", "aiohttp.server", "aiohttp.access", "aiohttp.web")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler.lines
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


async def exchange(url: str, data: bytes, first: bytes = b"", between: Callable[[], Awaitable[None]] | None = None,
                   guard: float = 20) -> tuple[bytes, str]:
    """Send `first` (when given) and read its whole answer (or, with `between`, await that instead), then `data`,
    over a plain socket, then read until the router closes the connection: everything read, and how it ended
    ("closed", "reset" where the router reset it, "hung" where a read waited `guard` seconds: a hang guard)."""
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setblocking(False)
    got = bytearray()
    try:
        await loop.sock_connect(sock, (host, int(port)))
        if first:
            await loop.sock_sendall(sock, first)
            if between is not None:
                await between()
            while between is None and not (b"\r\n\r\n" in got and len(answers(bytes(got), whole=False)) == 1):
                got += await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), guard)
        await loop.sock_sendall(sock, data)
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), guard):
            got += chunk
    except asyncio.TimeoutError:
        return bytes(got), "hung"
    except ConnectionResetError:
        return bytes(got), "reset"
    finally:
        sock.close()
    return bytes(got), "closed"


def answers(raw: bytes, whole: bool = True) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP answers in `raw`, one after the other (each by its Content-Length); `whole`: nothing is left over
    (else the answers complete so far)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", -1))
        if not sep or len(rest) < length:
            assert not whole, raw[:300]
            break
        assert status_line.startswith("HTTP/1."), raw[:300]
        out.append((int(status_line.split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return out


@pytest.mark.parametrize(("what", "data"), BAD, ids=[what for what, _ in BAD])
async def test_a_malformed_request_is_a_json_400_that_quotes_nothing(fakes, router, logged, what, data) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    kept_alive = what.startswith("a second request")
    raw, ended = await exchange(r.url, data, FIRST if kept_alive else b"")
    assert ended == "closed", raw[:300]  # the answer, then the end of the connection (no reset)
    *before, (status, headers, body) = answers(raw)
    assert [s for s, _, _ in before] == ([200] if kept_alive else [])
    assert status == 400, raw[:300]
    assert headers["content-type"] == "application/json" and headers["server"] == "agentgate"
    error = json.loads(body)["error"]  # OpenAI's shape: the path is not known once the request line was refused
    assert error["type"] == "invalid_request_error" and error["code"] == "malformed_http_request", body
    assert error["message"].startswith("The request is not valid HTTP/1.1:"), body
    for leak in (SECRET.encode(), SECRET[:12].encode(), b"Bearer", b"key=", b"\\x", b"abc"):
        assert leak not in raw, (leak, raw[:600])
    text = "\n".join(logged)
    assert "malformed HTTP request" in text  # the fact is logged (the aiohttp.server record, rewritten)
    for leak in (SECRET, SECRET[:12], "Bearer", "key=", "\\x"):
        assert leak not in text, (leak, text[-2000:])
    assert up.requests == []


def test_the_accepting_site_answers_the_same_on_uvloop() -> None:
    """Under uvloop the router accepts connections itself (`router.listener`) and hands them to the same server."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[bytes, str]:
        app = create_app(parse_config(CONFIG.format(key=KEY, url="http://127.0.0.1:9/v1"), env={}))
        running = await start(app)
        try:
            return await exchange(running.url, BAD[0][1])
        finally:
            await running.stop()

    loop = uvloop.new_event_loop()
    try:
        raw, ended = loop.run_until_complete(main())
    finally:
        loop.close()
    assert ended == "closed"
    [(status, _, body)] = answers(raw)
    assert status == 400 and json.loads(body)["error"]["code"] == "malformed_http_request"
    assert SECRET.encode() not in raw


async def test_a_failure_a_handler_let_escape_is_json_in_the_paths_shape(logged) -> None:
    """What a handler lets escape (none of the router's does: they answer their own failures) is aiohttp's 500,
    or its 504 for a timeout: in the path's shape too, the exception's text kept out of the answer."""
    from aiohttp import web

    from router.protocol import Runner

    async def fails(request: web.Request) -> web.StreamResponse:
        raise RuntimeError(f"failed with {SECRET}")

    async def times_out(request: web.Request) -> web.StreamResponse:
        raise asyncio.TimeoutError

    app = web.Application()
    app.router.add_post("/v1/messages", fails)
    app.router.add_post("/v1/chat/completions", fails)
    app.router.add_post("/v1/messages/count_tokens", times_out)
    runner = Runner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        got = {}
        for path in ("/v1/messages", "/v1/chat/completions", "/v1/messages/count_tokens"):
            post = b"POST %s HTTP/1.1\r\n%sContent-Length: 2\r\n\r\n{}" % (path.encode(), HEAD)
            raw, ended = await exchange(url, post)
            assert ended == "closed" and SECRET.encode() not in raw
            [(status, headers, body)] = answers(raw)
            got[path] = (status, headers, json.loads(body))
    finally:
        await runner.cleanup()
    status, headers, doc = got["/v1/messages"]
    assert status == 500 and doc["type"] == "error" and doc["error"]["type"] == "api_error"
    assert doc["request_id"] == headers["request-id"] == headers["x-request-id"]
    status, headers, doc = got["/v1/chat/completions"]
    assert status == 500 and doc["error"]["code"] == "internal_error" and "request-id" not in headers
    status, headers, doc = got["/v1/messages/count_tokens"]
    assert status == 504 and doc["error"]["type"] == "timeout_error"
    assert SECRET in "\n".join(logged)  # the failure is logged as aiohttp logs it (a traceback: not a client's bytes)
