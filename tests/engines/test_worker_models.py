"""The worker's /v1/models: the model it serves, listed and retrieved by its id, an id with a slash too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from engines.worker.server import WorkerSettings, serve, wait_ready
from tests.engines.conftest import Engine


@pytest.mark.parametrize("name", ["org/model", "mlx-community/Qwen3-0.6B-4bit"])
async def test_a_model_id_with_a_slash_is_retrieved(tiny_models: dict[str, Path], name: str) -> None:
    """A worker serving `--name org/model` answered GET /v1/models/org/model (the slash unescaped, as curl and
    clients that build the path themselves send it; OpenAI's SDK escapes it) with a 404 route error, not the model:
    the id took one path segment only."""
    e = Engine(await serve(WorkerSettings(model=str(tiny_models["random"]), name=name)))
    try:
        await asyncio.wait_for(wait_ready(e.worker.app), 60)
        model = await e.client().models.retrieve(name)
        assert (model.id, model.object) == (name, "model")
        status, body = await e.get(f"/v1/models/{name}")
        assert status == 200 and body["id"] == name, body
        status, err = await e.get(f"/v1/models/{name}/x")
        assert status == 404 and err["error"]["code"] == "model_not_found", err
        with pytest.raises(openai.NotFoundError):
            await e.client().models.retrieve("org/other")
    finally:
        await e.close()
