"""Engine fixtures: tiny models built once per session, and workers started in-process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from engines.worker.server import RunningWorker, WorkerSettings, serve, wait_ready
from engines.worker.tiny import build_tiny_model

SCRIPTS = {
    "tool": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "broken_tool": "<tool_call>\n{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",
    "bare_json": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    "think": "<think>\nThe user says hello, so I greet them back.\n</think>\n\nHello! How can I help you today?",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    models = {"random": build_tiny_model(root / "random", seed=1)}
    for name, script in SCRIPTS.items():
        models[name] = build_tiny_model(root / name, script=script)
    return models


class Engine:
    def __init__(self, worker: RunningWorker) -> None:
        self.worker = worker
        self.url = worker.url
        self.clients: list[openai.AsyncOpenAI] = []

    def client(self, **kw: Any) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, **kw)
        self.clients.append(client)  # closed by the fixture: leaked connections would be closed by the GC later
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.worker.close()

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as resp:
            return resp.status, await resp.json()

    async def post_raw(self, path: str, data: bytes) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.post(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        ) as resp:
            return resp.status, await resp.json()

    async def stats(self) -> dict[str, Any]:
        status, body = await self.get("/stats")
        assert status == 200
        return body

    async def wait_stats(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        """Poll /stats until `predicate` holds (bounded; fails the test otherwise)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            stats = await self.stats()
            if predicate(stats):
                return stats
            if loop.time() > deadline:
                raise AssertionError(f"stats never satisfied the condition: {stats}")
            await asyncio.sleep(0.01)


@pytest.fixture
async def engine(tiny_models: dict[str, Path]) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    started: list[Engine] = []

    async def start(model: str = "random", **settings: Any) -> Engine:
        worker = await serve(WorkerSettings(model=str(tiny_models[model]), name=model, **settings))
        engine = Engine(worker)
        started.append(engine)
        await asyncio.wait_for(wait_ready(worker.app), 60)
        return engine

    yield start
    for engine in started:
        await engine.close()
