"""What a client can make the router log: one line of what happened, never a traceback of its own making."""

from __future__ import annotations

import logging
import zlib

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.waiting import wait_until

CLIENT_KEY = "sk-client-logs-4d1f0a"


def _config(url: str) -> str:
    return f"""
server: {{api_keys: [{CLIENT_KEY}]}}
providers:
  up: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: up}}
"""


@pytest.mark.parametrize(("key", "status"), [("sk-wrong", 401), (CLIENT_KEY, 400)])
async def test_a_body_that_is_not_its_content_encoding_logs_one_line_no_traceback(fakes, router, caplog, key, status):
    up: FakeUpstream = await fakes()
    r = await router(_config(up.url))
    caplog.set_level(logging.DEBUG)
    body = zlib.compress(b'{"model": "m", "messages": []}')[:-6] + b"not deflate at all" * 50  # broken part way
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Content-Encoding": "deflate"}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", data=body, headers=headers,
                                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
        assert resp.status == status
        assert "error" in await resp.json()
    await wait_until(lambda: any(rec.name == "aiohttp.server" for rec in caplog.records))
    server = [rec for rec in caplog.records if rec.name == "aiohttp.server"]
    assert all(rec.exc_info is None and rec.exc_text is None for rec in server), [rec.getMessage() for rec in server]
    assert "Traceback" not in caplog.text and "Unhandled exception" not in caplog.text
    assert up.requests == []


FORGED = "12:00:00 INFO    agentgate.access: request status=200 key_name=admin"


def test_a_traceback_in_the_text_log_cannot_forge_a_line() -> None:
    """An exception's message may hold text a client chose (what a bug quotes); each line of its traceback is
    indented, its control characters escaped, so none of them begins or breaks a record."""
    from router.logs import TextFormatter

    try:
        raise ValueError(f"bad model 'm\n{FORGED}\r\u2028{FORGED}'")
    except ValueError as exc:
        record = logging.LogRecord("agentgate", logging.ERROR, __file__, 1, "unexpected error", (),
                                   (type(exc), exc, exc.__traceback__))
    first, *rest = TextFormatter().format(record).split("\n")
    assert first.endswith("agentgate: unexpected error") and rest
    assert all(line.startswith("  ") for line in rest), rest
    assert not any(c in line for line in rest for c in "\r\u2028")
    assert any(FORGED in line for line in rest)  # still told, inside the traceback
