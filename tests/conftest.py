"""Shared fixtures: fake upstreams and a router started on 127.0.0.1 from a YAML snippet."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable

import openai
import pytest

from engines.worker import blas

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# engines launched by routers under test keep their KV cache here, never in the user's state folder (a folder this
# process made is removed when it exits: one was left in /tmp by every run)
if "AGENTGATE_STATE_DIR" not in os.environ:
    os.environ["AGENTGATE_STATE_DIR"] = tempfile.mkdtemp(prefix="agentgate-test-state-")
    atexit.register(shutil.rmtree, os.environ["AGENTGATE_STATE_DIR"], ignore_errors=True)

from router.app import Running, create_app, start
from router.config import parse_config
from tests.fakes.openai_upstream import FakeUpstream
from tests.started import started

# MLX work in this process (the in-process workers of tests/engines) uses the engine's BLAS, bound before anything
# imports MLX, like the worker's entry point does (AGENTGATE_BLAS=bundled keeps the reference BLAS)
blas.bind(os.environ.get("AGENTGATE_BLAS", "auto"))


@pytest.fixture
async def fakes() -> AsyncIterator[Callable[..., Awaitable[FakeUpstream]]]:
    async with started(FakeUpstream) as make:
        yield make


class RouterHandle:
    def __init__(self, running: Running, app: object) -> None:
        self.running = running
        self.url = running.url
        self.app = app
        self.clients: list[openai.AsyncOpenAI] = []

    def client(self, api_key: str = "unused", **kw: object) -> openai.AsyncOpenAI:
        """A real openai client; closed with the router (a leaked pooled socket can stall a later test)."""
        c = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kw)  # type: ignore[arg-type]
        self.clients.append(c)
        return c

    @property
    def state(self):
        from router.state import STATE

        return self.app[STATE]  # type: ignore[index]


@contextlib.asynccontextmanager
async def _routers() -> AsyncIterator[Callable[..., Awaitable[RouterHandle]]]:
    started: list[RouterHandle] = []

    async def make(yaml_text: str, env: dict[str, str] | None = None) -> RouterHandle:
        config = parse_config(yaml_text, env=env or {})
        app = create_app(config)
        running = await start(app)
        handle = RouterHandle(running, app)
        started.append(handle)
        return handle

    yield make
    for h in started:
        for c in h.clients:
            await c.close()
        await h.running.stop()


@pytest.fixture
async def router() -> AsyncIterator[Callable[..., Awaitable[RouterHandle]]]:
    async with _routers() as make:
        yield make


@pytest.fixture(scope="module")
async def module_router() -> AsyncIterator[Callable[..., Awaitable[RouterHandle]]]:
    """`router` for the tests of one module that share a router (and the engines it starts), stopped after them."""
    async with _routers() as make:
        yield make
