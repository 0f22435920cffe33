"""A provider configured with an `anthropic-beta` of its own (the 1M-context beta, say) lost it on the Messages
pass-through as soon as the client sent an `anthropic-beta` too (Claude Code always does): the client's header
replaced the configured one. Both go now, as one comma-separated list, to `/messages` and to `count_tokens`."""

from __future__ import annotations

from aiohttp import web

from tests.dialects.conftest import claude
from tests.fakes.anthropic_upstream import API_KEY, FakeAnthropic

CONFIGURED = "context-1m-2025-08-07"
CLIENT = "claude-code-20250219,interleaved-thinking-2025-05-14"
MESSAGES = [{"role": "user", "content": "x"}]


def _sent(lines: list[str]) -> list[str]:
    return [b.strip() for line in lines for b in line.split(",")]


async def test_the_configured_beta_and_the_clients_are_merged(fake_anthropic, router, monkeypatch):
    seen: list[list[str]] = []  # every anthropic-beta line of each request (the fake keeps one)
    for name in ("_handle", "_count"):
        original = getattr(FakeAnthropic, name)

        async def recording(self, request: web.Request, original=original) -> web.StreamResponse:
            seen.append(request.headers.getall("anthropic-beta", []))
            return await original(self, request)

        monkeypatch.setattr(FakeAnthropic, name, recording)
    fake = await fake_anthropic()
    r = await router(f"""
providers:
  claude: {{type: anthropic, base_url: '{fake.url}', api_key: '{API_KEY}', retries: 0,
            headers: {{anthropic-beta: '{CONFIGURED},claude-code-20250219'}}}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
""")
    c = claude(r.url)
    await c.messages.create(model="sonnet", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert _sent(seen[-1]) == [CONFIGURED, "claude-code-20250219"]
    await c.messages.create(model="sonnet", max_tokens=10, messages=MESSAGES,  # type: ignore[arg-type]
                            extra_headers={"anthropic-beta": CLIENT})
    expected = [CONFIGURED, "claude-code-20250219", "interleaved-thinking-2025-05-14"]  # each once, order kept
    assert _sent(seen[-1]) == expected
    await c.messages.count_tokens(model="sonnet", messages=MESSAGES,  # type: ignore[arg-type]
                                  extra_headers={"anthropic-beta": CLIENT})
    assert _sent(seen[-1]) == expected
    assert len(seen) == 3
