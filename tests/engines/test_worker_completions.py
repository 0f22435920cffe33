"""The text a completion carries: what the generated tokens add to the prompt's text, the space that starts it
included."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

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
