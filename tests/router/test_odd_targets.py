"""Requests no route can take before routing begins: TLS spoken to the router's plain-HTTP port is told so (a 400
that names the likely cause, quoting none of the handshake's bytes), and a request whose target is not a path
(`CONNECT host:443`, `OPTIONS *`) gets the routes' JSON 404 instead of aiohttp's text page."""

from __future__ import annotations

import json
import ssl

import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.router import test_chunked_body_errors as chunked
from tests.router import test_malformed_requests as malformed
from tests.router.test_expect_header import until_answered
from tests.router.test_malformed_requests import CONFIG, KEY, answers, exchange

logged = malformed.logged  # the fixtures: every line the loggers write; which of aiohttp's parsers is used
parser = chunked.parser


def client_hello() -> bytes:
    """The first bytes a TLS client sends (an https:// URL given for the router's http:// one)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="router.example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def test_tls_on_the_plain_http_port_is_told_so(fakes, router, logged, parser) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    hello = client_hello()
    assert hello[:2] == b"\x16\x03"
    raw, ended = await exchange(r.url, hello)
    assert ended == "closed", raw[:300]
    [(status, headers, body)] = answers(raw)
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "malformed_http_request", error
    assert "TLS (https://)" in error["message"] and "plain-HTTP port" in error["message"], error
    assert b"router.example" not in raw and b"\\x" not in raw  # (the hello names the host it wants)
    text = "\n".join(logged)
    assert "TLSOnPlainHTTP" in text and "router.example" not in text, text[-2000:]


@pytest.mark.parametrize("line", [b"CONNECT api.example:443 HTTP/1.1", b"OPTIONS * HTTP/1.1"])
async def test_a_target_that_is_not_a_path_is_the_routes_json_404(fakes, router, parser, line) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    # (read until the answer is whole: aiohttp's pure-Python parser reads what follows a CONNECT as its body, for
    # as long as aiohttp lingers after the answer)
    raw = await until_answered(r.url, line + b"\r\nHost: api.example:443\r\nConnection: close\r\n\r\n")
    [(status, headers, body)] = answers(raw)
    assert status == 404 and headers["content-type"] == "application/json", raw[:300]
    error = json.loads(body)["error"]
    routes, _ = await exchange(r.url, b"GET /no/such/path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(_, _, theirs)] = answers(routes)
    assert {k: v for k, v in error.items() if k != "message"} == {
        k: v for k, v in json.loads(theirs)["error"].items() if k != "message"}, (error, theirs)
    assert error["code"] == "not_found", error
    assert b"api.example" not in raw.partition(b"\r\n\r\n")[2]
    assert up.requests == []


async def test_an_anthropic_client_gets_anthropics_shape(fakes, router) -> None:
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    raw, _ = await exchange(r.url, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\n"
                                   b"Connection: close\r\n\r\n")
    [(status, headers, body)] = answers(raw)
    doc = json.loads(body)
    assert status == 404 and doc["type"] == "error" and doc["error"]["type"] == "not_found_error", doc
    assert doc["request_id"] == headers["request-id"] == headers["x-request-id"]


async def test_an_expectation_on_such_a_target_is_a_json_417(fakes, router) -> None:
    """aiohttp's own expect handler answers there (no route matched): its 417 page echoed the header's value."""
    up: FakeUpstream = await fakes()
    r = await router(CONFIG.format(key=KEY, url=up.url))
    raw, _ = await exchange(r.url, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nExpect: sk-secret-odd-4411\r\n"
                                   b"Connection: close\r\n\r\n")
    [(status, headers, body)] = answers(raw)
    assert status == 417 and headers["content-type"] == "application/json", raw[:300]
    assert b"sk-secret-odd" not in raw
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
