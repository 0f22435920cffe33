"""Dialect fixtures: a private response store per test, the fake Anthropic API, and SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.started import started

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CHAT_WEATHER = {"type": "function", "function": WEATHER}
ANTHROPIC_WEATHER = {"name": WEATHER["name"], "description": WEATHER["description"],
                     "input_schema": WEATHER["parameters"]}
RESPONSES_WEATHER = {"type": "function", **WEATHER}

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 1, backoff: {{base: 0.001, max: 0.002}}}}
models:
  - {{name: m, provider: lab}}
  - {{name: renamed, provider: lab, model: up-model}}
"""


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTGATE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[Callable[[], Awaitable[FakeAnthropic]]]:
    async with started(FakeAnthropic) as make:
        yield make


def claude(router_url: str, api_key: str = "unused") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=router_url, api_key=api_key, max_retries=0)


async def claude_message(router_url: str, stream: bool, **kw: Any) -> Any:
    """A Messages answer through the anthropic SDK: `messages.create`, or a stream's final message."""
    if stream:
        async with claude(router_url).messages.stream(**kw) as s:
            return await s.get_final_message()
    return await claude(router_url).messages.create(**kw)


async def anthropic_refused(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to `url`, which must answer 400 in Anthropic's shape: its `error` object."""
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as resp:
        assert resp.status == 400, await resp.text()
        doc: dict[str, Any] = await resp.json()
    assert doc["type"] == "error", doc
    error: dict[str, Any] = doc["error"]
    return error
