"""A provider's key in an upstream body, in any spelling that decodes to it — JSON escapes, percent-encoding, both —
and in bodies the standard library's JSON refuses or reads otherwise (a 5,000-digit number, nesting past the
recursion limit, bytes after the document, a duplicate key, a lone surrogate escape beside it): never passed on.
Before, every such body but the parsable ones went out as it came, and one with a lone surrogate escape was a 500.
And a request body that is not what its headers say is a 400 in the route's shape."""

from __future__ import annotations

import json
import re
import urllib.parse

import aiohttp
import pytest

from router.redact import WITHHELD, scrub_body
from tests.fakes.openai_upstream import Step, completion, stream_of

KEY = "sk-SECRET-abc123"
ESC = "".join(f"\\u{ord(c):04x}" for c in KEY)  # the key as JSON escapes, every character
PCT = "".join(f"%{b:02X}" for b in KEY.encode())
BODIES = {
    "escaped": f'{{"error": {{"message": "{ESC}"}}}}',
    "half escaped": '{"error": {"message": "sk-SEC\\u0052ET-abc123"}}',
    "huge number": f'{{"error": {{"message": "{ESC}"}}, "n": {"1" * 5000}}}',
    "deep": '{"a": ' * 2000 + f'"{ESC}"' + "}" * 2000,
    "trailing": f'{{"error": {{"message": "{ESC}"}}}} trailing',
    "duplicate key": f'{{"error": {{"message": "{ESC}", "message": "bad"}}}}',
    "lone surrogate": f'{{"error": {{"message": "{ESC} \\udc00"}}}}',
    "percent": f'{{"error": {{"message": "see http://127.0.0.1:9/?k={PCT}"}}}}',
    "percent of escapes": '{"error": {"message": "' + ESC.replace("\\", "%5C") + '"}}',
    "escaped percents": '{"error": {"message": "' + PCT.replace("%", "\\u0025") + '"}}',
    "text": f"upstream said: {ESC} / {PCT}",
    "invalid utf-8": f'{{"error": {{"message": "{ESC}"}}, "x": "'.encode().decode() + "\udcff" + '"}',
}


def _unescape(body: bytes) -> bytes:
    return re.sub(rb"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)).encode("utf-8", "replace"),
                  body).replace(b"\\/", b"/")


def _readable(body: bytes) -> bytes:
    """Every way a client could read `body`: as it is, its escapes decoded, percent-decoded, both in either order."""
    unquoted = urllib.parse.unquote_to_bytes(body)
    return b"\n".join([body, _unescape(body), unquoted, urllib.parse.unquote_to_bytes(_unescape(body)),
                       _unescape(unquoted)])


@pytest.mark.parametrize("name", list(BODIES))
def test_no_spelling_of_the_key_gets_through(name: str) -> None:
    body = BODIES[name].encode("utf-8", "surrogateescape")
    assert KEY.encode() in _readable(body)  # the case does spell the key
    out = scrub_body(body, KEY)
    assert KEY.encode() not in _readable(out), out[:200]


def test_a_parsable_body_keeps_everything_but_the_key() -> None:
    out = scrub_body(BODIES["escaped"].encode(), KEY)
    assert json.loads(out) == {"error": {"message": "[redacted]"}}
    assert scrub_body(BODIES["huge number"].encode(), KEY) == WITHHELD


@pytest.mark.parametrize("body", [b'{"a": "caf\\u00e9 100%", "b": "\\n\\"q\\""}', b"50% off, C:\\\\path",
                                  b'{"n": ' + b"9" * 5000 + b"}"])
def test_a_body_without_the_key_is_passed_on_byte_for_byte(body: bytes) -> None:
    assert scrub_body(body, KEY) == body


CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(fakes, router, route, encoding):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).encode()
    async with aiohttp.ClientSession(auto_decompress=False) as s, s.post(
            r.url + route, data=body, headers={"Content-Type": "application/json", "Content-Encoding": encoding,
                                               "anthropic-version": "2023-06-01"}) as resp:
        assert resp.status == 400
        assert resp.headers["Connection"] == "close"  # (what follows such a body is not read as a request)
        doc = await resp.json()
    if route == "/v1/messages":
        assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    else:
        assert doc["error"]["code"] == "invalid_body"
    assert not up.requests


@pytest.mark.parametrize("placeholder", ["x", "EMPTY", "ollama", "none", "abc1234"])
async def test_a_placeholder_key_is_not_redacted_out_of_answers(fakes, router, placeholder):
    """Local servers take any key, and their configs hold a placeholder ("EMPTY", "ollama", "x"): every occurrence
    of it in an answer was redacted ("index" came back "inde[redacted]" with the key "x", breaking every stream).
    A value under 8 characters guards nothing and is not looked for; a real key still is."""
    from router.config import parse_config

    up = await fakes()
    text = f'the "index" of {placeholder} and EMPTY ollama none x'
    up.push(Step(json=completion(text, "m")), Step(sse=stream_of(text, "m")))
    r = await router(f"""
providers: {{lab: {{type: openai, base_url: "{up.url}", api_key: "{placeholder}"}}}}
models: [{{name: m, provider: lab}}]
""")
    resp = await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == text
    got = "".join([c.choices[0].delta.content or "" async for c in await r.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices])
    assert got == text
    cfg = parse_config(f'providers: {{a: {{type: openai, base_url: "http://127.0.0.1:1", api_key: "{KEY}"}}}}\n'
                       "models: [{name: m, provider: a}]")
    assert KEY in cfg.providers["a"].secrets
