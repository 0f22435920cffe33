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
