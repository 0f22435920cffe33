"""`Expect`: 100-continue is met when the route reads the body (an interim 100, then the body, then the answer); an
answer the route gives before it reads (a 413 for a body declared too large, a 401) goes out without the 100, and
the connection closes after it, the body never asked for; any other expectation is a 417 in the route's JSON shape
that does not quote the header's value (a client that mis-set a header could put a key there), where aiohttp's text
page echoed it."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.router.test_malformed_requests import CONFIG, KEY, answers, exchange

SECRET = "sk-secret-expect-0e4a77"
LIMITED = CONFIG.replace("server: {{", "server: {{max_body_mb: 0.01, ")


def post(path: str, expect: str, length: int, version: str = "1.1") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\nx-api-key: {KEY}\r\n"
            f"Expect: {expect}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n").encode()


async def until_answered(url: str, data: bytes) -> bytes:
    """Send `data` (headers only: no body follows) and read until the answer (after any interim 100) is whole
    (aiohttp then waits a while for the body it was promised before it closes the connection)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    got = b""
    try:
        writer.write(data)
        while not answers(got.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n"), whole=False):
            got += await asyncio.wait_for(reader.read(1 << 16), 10)  # (a hang guard)
    finally:
        writer.close()
    return got


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/models",
                                  "/no/such/route"])
async def test_an_expectation_other_than_100_continue_is_a_json_417_that_quotes_nothing(fakes, router, path) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    raw, ended = await exchange(r.url, post(path, SECRET, 0))
    assert ended == "closed", raw[:300]
    [(status, headers, body)] = answers(raw)
    assert status == 417, raw[:300]
    assert headers["content-type"] == "application/json" and SECRET.encode() not in raw
    doc = json.loads(body)
    if path == "/v1/messages":
        assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error", doc
        assert doc["request_id"] == headers["request-id"] == headers["x-request-id"]
        message = doc["error"]["message"]
    else:
        assert doc["error"]["code"] == "expectation_failed" and doc["error"]["type"] == "invalid_request_error", doc
        message = doc["error"]["message"]
    assert "100-continue" in message  # what the router does meet
    assert up.requests == []


async def test_an_anthropic_client_gets_anthropics_shape_on_any_path(fakes, router) -> None:
    """As for a path no route takes: an `anthropic-version` header picks Anthropic's shape."""
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    data = post("/v1/other", SECRET, 0).replace(b"\r\n\r\n", b"\r\nanthropic-version: 2023-06-01\r\n\r\n")
    raw, _ = await exchange(r.url, data)
    [(status, _, body)] = answers(raw)
    assert status == 417 and json.loads(body)["type"] == "error", raw[:300]


async def test_http_1_0_ignores_expect_as_before(fakes, router) -> None:
    """HTTP/1.0 has no Expect: aiohttp passes such a request to its route, and so does the router."""
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    raw, _ = await exchange(r.url, post("/v1/chat/completions", SECRET, len(chat), "1.0") + chat)
    [(status, _, body)] = answers(raw)
    assert status == 200 and json.loads(body)["object"] == "chat.completion", raw[:300]


async def test_100_continue_still_reaches_the_route(fakes, router) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    async with aiohttp.ClientSession() as s, s.post(
            r.url + "/v1/chat/completions", expect100=True, headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200
        assert (await resp.json())["choices"][0]["message"]["content"] == "echo: hi"
    assert len(up.requests) == 1


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_100_continue_with_a_body_declared_too_large_is_the_routes_413_without_the_interim_100(
        fakes, router, path) -> None:
    """The answer is known before the body is sent: no 100 asks the client to send it (the interim 100 is sent
    when the route reads the body), and the connection closes after the 413 (the promised body never comes),
    rather than lingering for it."""
    up: FakeUpstream = await fakes()
    r = await router(LIMITED.format(key=KEY, url=up.url))
    raw, ended = await exchange(r.url, post(path, "100-continue", 999_999).replace(b"Connection: close\r\n", b""),
                                guard=5)
    assert ended == "closed", raw[:300]  # (aiohttp's lingering read waits 10 s for a body the client holds back)
    assert not raw.startswith(b"HTTP/1.1 100"), raw[:300]
    [(status, headers, body)] = answers(raw)
    assert status == 413 and headers["connection"] == "close", raw[:300]
    doc = json.loads(body)
    assert (doc["error"]["type"] if path == "/v1/messages" else doc["error"]["code"]) == "request_too_large", doc
    assert up.requests == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_100_continue_with_a_wrong_key_is_a_401_without_the_interim_100(fakes, router, path) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    data = post(path, "100-continue", 5000).replace(KEY.encode(), b"sk-wrong").replace(b"Connection: close\r\n", b"")
    raw, ended = await exchange(r.url, data, guard=5)
    assert ended == "closed" and not raw.startswith(b"HTTP/1.1 100"), raw[:300]
    [(status, headers, _)] = answers(raw)
    assert status == 401 and headers["connection"] == "close", raw[:300]
    assert b"sk-wrong" not in raw and up.requests == []


async def test_the_interim_100_comes_when_the_route_reads_the_body_and_the_connection_is_kept(fakes, router) -> None:
    """Over one connection: a request with `Expect: 100-continue` gets its 100 once its route reads the body,
    sends the body, gets its answer, and a second request follows on the same connection."""
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = post("/v1/chat/completions", "100-continue", len(chat)).replace(b"Connection: close\r\n", b"")
    host, port = r.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # (a hang guard)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(chat)
        got = b""
        while not answers(got, whole=False):
            got += await asyncio.wait_for(reader.read(1 << 16), 10)
        [(status, headers, body)] = answers(got)
        assert status == 200 and headers.get("connection") != "close", got[:300]
        assert json.loads(body)["choices"][0]["message"]["content"] == "echo: hi"
        writer.write(head.replace(b"Expect: 100-continue\r\n", b"") + chat)
        got = b""
        while not answers(got, whole=False):
            got += await asyncio.wait_for(reader.read(1 << 16), 10)
        assert answers(got)[0][0] == 200
    finally:
        writer.close()
    assert len(up.requests) == 2


async def test_a_client_that_sends_its_body_without_waiting_keeps_its_connection(fakes, router) -> None:
    """A client may send the body right after `Expect: 100-continue`: answered early (a 401), its body is read and
    dropped as before (closing on unread bytes would reset the connection), and its next request is answered."""
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    big = b" " * 300_000 + chat
    first = post("/v1/chat/completions", "100-continue", len(big)).replace(KEY.encode(), b"sk-wrong").replace(
        b"Connection: close\r\n", b"") + big
    then = post("/v1/chat/completions", "x", len(chat)).replace(b"Expect: x\r\n", b"")
    raw, ended = await exchange(r.url, first + then + chat, guard=10)
    assert ended == "closed", raw[:300]
    statuses = [s for s, _, _ in answers(raw.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b""))]
    assert statuses == [401, 200], raw[:600]
