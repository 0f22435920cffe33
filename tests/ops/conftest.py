"""Fixtures for the operations tests: a router served from a config file (so it can reload), metric parsing,
and a capture of the access log as the JSON formatter writes it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.app import Running, create_app, start
from router.config import load_config
from router.logs import JsonFormatter
from router.state import STATE, AppState


class Served:
    """A router started from a YAML file, with helpers to rewrite the file and reload it."""

    def __init__(self, path: Path, app: Any, running: Running) -> None:
        self.path = path
        self.app = app
        self.running = running
        self.url = running.url

    @property
    def state(self) -> AppState:
        return self.app[STATE]  # type: ignore[no-any-return]

    def client(self, api_key: str = "unused", **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kw)

    def write(self, yaml_text: str) -> None:
        self.path.write_text(yaml_text, encoding="utf-8")

    async def post(self, path: str, key: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession() as s, s.post(self.url + path, headers=headers) as resp:
            return resp.status, await resp.json()

    async def reload(self, key: str | None = None) -> tuple[int, Any]:
        return await self.post("/admin/reload", key)

    async def get(self, path: str, key: str | None = None) -> tuple[int, str, dict[str, str]]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession() as s, s.get(self.url + path, headers=headers) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def metrics(self, key: str | None = None) -> str:
        status, text, _ = await self.get("/metrics", key)
        assert status == 200, text
        return text


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Served]]]:
    started: list[Served] = []

    async def make(yaml_text: str) -> Served:
        path = tmp_path / f"config{len(started)}.yaml"
        path.write_text(yaml_text, encoding="utf-8")
        app = create_app(load_config(path), config_path=str(path))
        running = await start(app)
        handle = Served(path, app, running)
        started.append(handle)
        return handle

    yield make
    for h in started:
        await h.running.stop()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels` (summed over the others), or None."""
    total: float | None = None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total = (total or 0.0) + s.value
    return total


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class LogCapture:
    def __init__(self, handler: _Lines) -> None:
        self._handler = handler

    @property
    def lines(self) -> list[str]:
        return self._handler.lines

    def docs(self, logger: str | None = None) -> list[dict[str, Any]]:
        docs = [json.loads(line) for line in self.lines]
        return [d for d in docs if logger is None or d["logger"] == logger]


@pytest.fixture
def access_lines() -> Iterator[LogCapture]:
    """Every record of the `agentgate` loggers, formatted by the JSON formatter, one string per line."""
    handler = _Lines()
    logger = logging.getLogger("agentgate")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield LogCapture(handler)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
