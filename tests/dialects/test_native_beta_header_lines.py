"""A client that sends its betas as several `anthropic-beta` lines (RFC 9110 5.3: the same as one line, the values
joined by commas) had only the first line's forwarded on the Messages pass-through; every line goes now, as one
list, to `/messages` and to `count_tokens`."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.fakes.anthropic_upstream import API_KEY

CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""
LINES = ["interleaved-thinking-2025-05-14", "context-management-2025-06-27,interleaved-thinking-2025-05-14"]


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"], ids=["message", "count"])
async def test_every_anthropic_beta_line_is_forwarded(fake_anthropic, router, path):
    fake = await fake_anthropic()
    r = await router(CFG.format(url=fake.url, key=API_KEY))
    headers = CIMultiDict([("anthropic-version", "2023-06-01"), *(("anthropic-beta", line) for line in LINES)])
    body = {"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    (sent,) = fake.requests
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-management-2025-06-27"
