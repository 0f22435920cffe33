"""An upstream closed (at shutdown, or retired by a reload) stays closed: a request that still reaches it fails with
a 503 `upstream_unavailable` (its next target is tried), and no connection pool is opened again, which nothing
would close."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from engines.supervisor.types import Endpoint, EngineStatus
from router.config import parse_config
from router.config.model import ProviderConfig
from router.upstream.anthropic import AnthropicUpstream
from router.upstream.base import UpstreamRequest, UpstreamUnavailable
from router.upstream.engine import EngineUpstream
from router.upstream.openai import HttpUpstream, OpenAIUpstream
from tests.fakes.openai_upstream import FakeUpstream

Fakes = Callable[[str], Awaitable[FakeUpstream]]
REQUEST = UpstreamRequest("/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def providers(url: str) -> str:
    return f"""
providers:
  lab: {{type: openai, base_url: "{url}"}}
  ant: {{type: anthropic, base_url: "{url}", api_key: k}}
models:
  - {{name: m, provider: lab}}
  - {{name: a, provider: ant}}
  - {{name: local, command: [/bin/true]}}
"""


@pytest.mark.parametrize("kind", [OpenAIUpstream, AnthropicUpstream])
async def test_a_closed_http_upstream_refuses_requests_and_opens_no_session(
        fakes: Fakes, kind: Callable[[ProviderConfig], HttpUpstream]) -> None:
    fake = await fakes("lab")
    config = parse_config(providers(fake.url), env={})
    up = kind(config.providers["lab" if kind is OpenAIUpstream else "ant"])
    reply = await up.send(REQUEST)  # open: the pooled session is made on first use
    await reply.close()
    assert up._session is not None and not up.disabled_reason

    await up.close()
    with pytest.raises(UpstreamUnavailable) as raised:
        await up.send(REQUEST)
    assert up._session is None and up.closed
    failure = up.classify(raised.value)
    assert failure.error.status == 503 and failure.error.code == "upstream_unavailable" and not failure.final
    assert up.disabled_reason is not None and "closed" in up.disabled_reason  # dispatch skips it from then on
    assert len(fake.requests) == 1


class OneEngine:
    """Stands in for the engine supervisor: every lease is the fake server's address."""

    def __init__(self, url: str) -> None:
        self.url = url

    @asynccontextmanager
    async def lease(self, name: str) -> AsyncIterator[Endpoint]:
        yield Endpoint(self.url)

    def crashed(self, name: str) -> bool:
        return False

    def states(self) -> dict[str, EngineStatus]:
        return {}


async def test_a_closed_engine_upstream_refuses_requests_and_opens_no_session(fakes: Fakes) -> None:
    fake = await fakes("engine")
    config = parse_config(providers(fake.url), env={})
    supervisor = OneEngine(fake.url)
    up = EngineUpstream(config.providers["engine:local"], supervisor)  # type: ignore[arg-type]
    reply = await up.send(REQUEST)
    assert reply.status == 200
    await reply.close()
    assert len(up._sessions) == 1

    await up.close()
    with pytest.raises(UpstreamUnavailable):
        await up.send(REQUEST)
    assert not up._sessions and up.closed
    assert len(fake.requests) == 1
