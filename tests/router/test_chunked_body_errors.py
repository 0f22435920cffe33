"""A chunked request body that turns malformed after its route began reading it (a good first chunk, then a chunk
size line that is not one) is answered at once: a 400 in the route's shape (Anthropic's on /v1/messages), quoting
none of the body, then the connection closed. aiohttp's parser queued its error as the next request while the
route's read of the body waited on, until the route's idle timeout (a 408 after 75 s by default). Both of aiohttp's
parsers are tried (its C one, and the pure-Python one that `AIOHTTP_NO_EXTENSIONS=1` selects)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import http_parser, web_protocol

from router.drain import IN_FLIGHT
from tests.fakes.openai_upstream import FakeUpstream, Step, completion
from tests.router import test_malformed_requests as malformed
from tests.router.test_malformed_requests import CONFIG, KEY, answers

logged = malformed.logged  # the fixture: every line the router's and aiohttp's loggers write

SECRET = "sk-secret-chunk-5d10e7"
PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/responses"]
GUARD_S = 10  # a hang guard on each read, not a measure


@pytest.fixture(params=["c", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which of aiohttp's request parsers the router's connections use."""
    if request.param == "python":
        monkeypatch.setattr(web_protocol, "HttpRequestParser", http_parser.HttpRequestParserPy)
    elif getattr(http_parser, "HttpRequestParserC", None) is None:  # (or AIOHTTP_NO_EXTENSIONS is set)
        pytest.skip("aiohttp's C parser is not built here")
    yield request.param


def head(path: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\nx-api-key: {KEY}\r\n"
            "anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def in_flight(app: object) -> None:
    """Until the router's handler for the request runs (its route then reads the body, or soon will)."""
    flight = app[IN_FLIGHT]  # type: ignore[index]
    for _ in range(GUARD_S * 100):
        if not flight._idle.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never reached its route")


async def send_in_two(url: str, app: object, first: bytes, then: bytes) -> tuple[bytes, str]:
    """Send `first`, wait for its route to run, send `then`; read until the router closes the connection (a
    socket timeout is a hang guard: a router that never answers fails the test instead of holding it)."""
    return await malformed.exchange(url, then, first, between=lambda: in_flight(app), guard=GUARD_S)


BODY = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                   "input": "hi"}).encode()
BAD_SIZE = SECRET.encode() + b"\r\nbad-chunk-data\r\n"  # not a hexadecimal size


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("first_chunk", [True, False], ids=["after-a-chunk", "first"])
async def test_a_chunked_body_malformed_mid_read_is_a_prompt_400_in_the_routes_shape(fakes, router, logged, parser,
                                                                                    path, first_chunk) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    first = head(path) + (chunk(BODY[:10]) if first_chunk else b"")
    raw, ended = await send_in_two(r.url, r.app, first, BAD_SIZE)
    assert ended == "closed", (ended, raw[:300])  # the answer, then the end of the connection
    [(status, headers, body)] = answers(raw)  # one answer: the parser's queued error is not answered as well
    assert status == 400, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"  # (the answer says what follows it)
    doc = json.loads(body)
    if path == "/v1/messages":
        assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error", doc
        assert doc["request_id"] == headers["request-id"] == headers["x-request-id"]
    else:
        assert doc["error"]["type"] == "invalid_request_error" and doc["error"]["code"] == "invalid_body", doc
    for leak in (SECRET.encode(), SECRET[:12].encode(), b"bad-chunk"):
        assert leak not in raw, (leak, raw[:600])
    text = "\n".join(logged)
    assert "rejected a request body that could not be read" in text  # the fact, not the bytes
    assert SECRET[:12] not in text and "bad-chunk" not in text, text[-2000:]
    assert up.requests == []


async def test_a_pipelined_request_whose_body_turns_malformed_while_it_waits_its_turn(fakes, router, parser) -> None:
    """The request before it still in its route: the malformed body is refused to the next route that reads it."""
    up: FakeUpstream = await fakes()
    gate = asyncio.Event()
    up.push(Step(json=completion("first", "m"), gate=gate))
    r = await router(CONFIG.format(key=KEY, url=up.url))
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    ahead = head("/v1/chat/completions").replace(b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(chat))

    async def open_the_gate() -> None:
        await up.wait_requests(1)  # the first request is in its route, the second (its body open) waits its turn
        await asyncio.sleep(0.1)  # (meanwhile the router, in this process, reads the bad chunk sent after it)
        gate.set()

    opening = asyncio.ensure_future(open_the_gate())
    raw, ended = await send_in_two(r.url, r.app, ahead + chat + head("/v1/messages") + chunk(BODY[:10]), BAD_SIZE)
    await opening
    assert ended == "closed", (ended, raw[:300])
    (s1, _, b1), (s2, headers, b2) = answers(raw)
    assert s1 == 200 and json.loads(b1)["choices"][0]["message"]["content"] == "first"
    assert s2 == 400 and json.loads(b2)["error"]["type"] == "invalid_request_error", raw[:600]
    assert headers["request-id"]  # Anthropic's shape: the second request was to /v1/messages
    assert headers["connection"] == "close"
    assert len(up.requests) == 1


async def send_chunked_chat(r: Any) -> tuple[int, bytes]:
    """A well-formed chat request whose body comes in 7-byte chunks, its first sent before the route runs; the
    answer's status and body (the connection closed after it)."""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    rest = b"".join(chunk(body[i:i + 7]) for i in range(10, len(body), 7)) + b"0\r\n\r\n"
    raw, ended = await send_in_two(r.url, r.app, head("/v1/chat/completions").replace(
        b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + chunk(body[:10]), rest)
    assert ended == "closed"
    [(status, _, answer)] = answers(raw)
    assert status == 200, raw[:600]
    return status, answer


async def test_a_well_formed_chunked_body_is_still_read(fakes, router, parser) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    _, body = await send_chunked_chat(r)
    assert json.loads(body)["object"] == "chat.completion"
    assert up.requests[0].body["messages"] == [{"role": "user", "content": "hi"}]


async def test_an_aiohttp_without_the_names_protocol_reads_serves_as_aiohttp_does(fakes, router, monkeypatch) -> None:
    """Where an aiohttp release lacks the internal names `Protocol.data_received` reads, the connection reads as
    aiohttp's own (`_READS_QUEUE` off): requests are served, TLS is then aiohttp's malformed method, no 5xx."""
    from router import protocol

    monkeypatch.setattr(protocol, "_READS_QUEUE", False)
    up: FakeUpstream = await fakes()
    up.push(Step(json=completion("hello", "m")))
    r = await router(CONFIG.format(key=KEY, url=up.url))
    await send_chunked_chat(r)
    loop = asyncio.get_running_loop()
    host, port = r.url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n")
        got = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), GUARD_S)
    assert got.startswith(b"HTTP/1.") and b" 400 " in got.split(b"\r\n", 1)[0]
