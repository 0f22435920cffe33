"""What a completion carries: the text the generated tokens add to the prompt's text (the space that starts it
included), and as many tokens as OpenAI's and vLLM's completions give when `max_tokens` is left out."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

from engines.worker.scheduler import SequenceHandle
from engines.worker.tiny import GENERATION_TAIL, build_tiny_model

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPACED = " is sunny today."  # what the scripted model generates, its leading space included


@pytest.fixture(scope="module")
def tiny_models(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The session's tiny models and one scripted to say SPACED."""
    return {**tiny_models, "spaced": build_tiny_model(tmp_path_factory.mktemp("spaced") / "model", script=SPACED)}


async def test_the_space_that_starts_the_generated_text_is_kept(engine, tiny_models):
    """A byte-level BPE completion very often starts with a space token ("The capital of France is" -> " Paris"):
    the client appends the text to the prompt, so the space is part of it, in completions and chat alike."""
    tokenizer = load_tokenizer(tiny_models["spaced"])
    generated = tokenizer.encode(SPACED, add_special_tokens=False)
    assert tokenizer.decode(generated) == SPACED
    client = (await engine("spaced")).client()
    ask = {"model": "spaced", "prompt": "The weather" + GENERATION_TAIL, "max_tokens": 10, "temperature": 0}
    whole = await client.completions.create(**ask)
    assert whole.usage.completion_tokens == len(generated) + 1  # and EOS
    assert whole.choices[0].text == SPACED
    text = ""
    async for chunk in await client.completions.create(**ask, stream=True):
        text += chunk.choices[0].text if chunk.choices else ""
    assert text == SPACED
    chat = {"model": "spaced", "messages": [{"role": "user", "content": "The weather?"}], "temperature": 0}
    reply = await client.chat.completions.create(**chat)
    assert reply.choices[0].message.content == SPACED
    content = ""
    async for chunk in await client.chat.completions.create(**chat, stream=True):
        content += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert content == SPACED


async def test_a_completion_without_max_tokens_stops_after_16_tokens(engine, tiny_models):
    """As OpenAI's Completions API and vLLM default it (clients that leave it out, such as autocomplete plugins,
    expect a short completion); an explicit null lifts the limit as in vLLM, and chat keeps running to the end of
    the context."""
    e = await engine("random", max_context=256)
    eos = json.loads((tiny_models["random"] / "config.json").read_text())["eos_token_id"]
    ask = {"model": "random", "prompt": "The weather today", "temperature": 0, "logit_bias": {str(eos): -100}}
    done = await e.client().completions.create(**ask)
    assert done.choices[0].finish_reason == "length" and done.usage.completion_tokens == 16
    text = ""
    async for chunk in await e.client().completions.create(**ask, stream=True):
        text += chunk.choices[0].text if chunk.choices else ""
    assert text == done.choices[0].text
    status, unlimited = await e.post_raw("/v1/completions", json.dumps({**ask, "max_tokens": None}).encode())
    assert status == 200 and unlimited["usage"]["total_tokens"] == 256
    chat = await e.client().chat.completions.create(model="random", messages=[{"role": "user", "content": "hi"}],
                                                     temperature=0, logit_bias={str(eos): -100})
    assert chat.choices[0].finish_reason == "length" and chat.usage.total_tokens == 256


@pytest.mark.parametrize("path, ask", [
    ("/v1/completions", {"prompt": "The weather today"}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "The weather?"}]}),
])
async def test_an_error_after_the_headers_ends_the_stream_with_an_error_event(
        engine: Callable[..., Awaitable[Any]], tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        path: str, ask: dict[str, Any]) -> None:
    """A completion stream that failed once its headers were sent ended without an error event or `[DONE]` (the
    client saw the text cut short, or waited), where a chat stream ended with both."""
    e = await engine("random")
    eos = json.loads((tiny_models["random"] / "config.json").read_text())["eos_token_id"]
    calls = 0
    real = SequenceHandle.next_events

    async def failing(self: SequenceHandle) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("generation broke")
        return await real(self)

    monkeypatch.setattr(SequenceHandle, "next_events", failing)
    body = {**ask, "model": "random", "max_tokens": 64, "temperature": 0, "stream": True,
            "logit_bias": {str(eos): -100}}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s, \
            s.post(e.url + path, json=body) as resp:
        assert resp.status == 200
        text = (await resp.read()).decode()
    events = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", text
    assert json.loads(events[-2])["error"]["code"] == "internal_error", text
